"""Training on real data: fusion classifiers and aligners on Tux Paint stamps (image + caption + sound effect).

Small real subsets, so the whole file runs in well under 90 s on two cores (features are cached after the
first run). Needs the Debian package tuxpaint-stamps-default (scripts/setup-system.sh): fails without it.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from polymodal.collection import Collection
from polymodal.config import Settings
from polymodal.index import ANALYZED, REEMBEDDED
from polymodal.train.manifest import read_manifest, write_manifest

STAMPS = Path("/usr/share/tuxpaint/stamps")
FUSION_CATEGORIES = ("animals", "food", "vehicles", "plants")
ALIGN_CATEGORIES = ("vehicles", "town", "household")


def stamp_rows(categories: tuple[str, ...], per_class: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """Captioned PNG stamps (label = top-level folder, text = English caption, audio = sound effect if any)."""
    if not STAMPS.is_dir():
        raise RuntimeError(f"{STAMPS} is missing: install tuxpaint-stamps-default (scripts/setup-system.sh)")
    rows: dict[str, list[dict[str, str]]] = {c: [] for c in categories}
    for png in sorted(STAMPS.rglob("*.png")):
        category = png.relative_to(STAMPS).parts[0]
        caption = png.with_suffix(".txt")
        if category not in rows or not caption.exists() or png.with_suffix(".svg").exists():
            continue
        text = caption.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
        sound = next((p for p in (png.with_suffix(".ogg"), png.with_suffix(".wav")) if p.exists()), None)
        rows[category].append({"label": category, "text": text, "image": str(png), "audio": str(sound or "")})
    rng = random.Random(seed)
    picked = []
    for items in rows.values():
        with_sound = [r for r in items if r["audio"]][:6]  # keep some sounds: audio is the rare modality
        rest = [r for r in items if not r["audio"]]
        rng.shuffle(rest)
        picked += (with_sound + rest)[: per_class or len(items)]
    return picked


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.from_env(store=tmp_path_factory.mktemp("train-store"), ocr_mode="never")


@pytest.fixture(scope="module")
def fusion_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_manifest(tmp_path_factory.mktemp("fusion") / "stamps.csv", stamp_rows(FUSION_CATEGORIES, 14))


@pytest.fixture(scope="module")
def trained(fusion_manifest: Path, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    from polymodal.train.run import train_fusion

    out = tmp_path_factory.mktemp("model")
    report = train_fusion(fusion_manifest, out, "early", test_fraction=0.3, seed=0, settings=settings, verbose=False)
    return out, report


def test_fusion_beats_chance_and_its_worst_modality(trained: tuple) -> None:
    out, report = trained
    results = report["results"]
    chance = 1 / len(FUSION_CATEGORIES)
    assert results["fusion"]["accuracy"] >= 2.5 * chance, results["fusion"]
    singles = {m: results[f"{m} only"]["accuracy"] for m in ("text", "image", "audio") if f"{m} only" in results}
    worst = min(singles, key=singles.get)
    assert results[f"fusion, rows with {worst}"]["accuracy"] > singles[worst], (worst, singles)
    assert results["fusion"]["n"] == report["split"]["test_rows"] > 0
    for name in ("model.safetensors", "config.json", "report.md", "report.json", "confusion.png", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert "macro-F1" in (out / "report.md").read_text()


def test_predictions_with_missing_modalities(trained: tuple, settings: Settings) -> None:
    from polymodal.train.run import predict

    out, _ = trained
    frog = STAMPS / "animals" / "amphibians" / "frog.png"
    full = predict(out, "A frog.", frog, frog.with_suffix(".ogg"), settings=settings)
    assert full["label"] == "animals" and set(full["drop_one"]) == {"text", "image", "audio"}
    assert full["driven_by"] in full["drop_one"]
    text_only = predict(out, text="A red apple.", settings=settings)
    assert text_only["label"] == "food" and text_only["modalities"] == ["text"]
    image_only = predict(out, image=frog, settings=settings)
    assert image_only["label"] == "animals" and abs(sum(image_only["probabilities"].values()) - 1) < 1e-3


def test_saved_model_predicts_identically_and_checks_extractors(
    fusion_manifest: Path, settings: Settings, tmp_path: Path
) -> None:
    from polymodal.train.features import FeatureMismatch
    from polymodal.train.fusion import FusionConfig, FusionModel, fit
    from polymodal.train.run import extractor_for

    extractor = extractor_for(settings)
    table, problems = extractor.table(read_manifest(fusion_manifest).rows)
    assert not problems
    model = fit(table, sorted(set(table.labels)), FusionConfig(fusion="hybrid", max_epochs=15, seed=3))
    model.extractors = extractor.ids()
    model.save(tmp_path / "m")
    loaded = FusionModel.load(tmp_path / "m", extractor)
    hidden_text = table.without("text")
    for rows in (table, hidden_text):
        assert np.array_equal(model.predict_proba(rows), loaded.predict_proba(rows))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["extractors"]["image"] = "some-other-model@9"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(FeatureMismatch, match="image: trained on some-other-model@9"):
        FusionModel.load(tmp_path / "m", extractor)


def test_bad_manifest_rows_are_reported_and_skipped(settings: Settings, tmp_path: Path) -> None:
    from polymodal.train.run import extractor_for

    good = STAMPS / "food" / "fruit" / "apple_red.png"
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    shutil.copy(good, tmp_path / "apple.png")
    manifest = tmp_path / "data.csv"
    manifest.write_text(
        "label,text,image,audio\n"
        "food,A red apple.,apple.png,\n"  # line 2: fine (relative path)
        "food,A pear.,missing.png,\n"  # 3: file not found
        ",An apple.,apple.png,\n"  # 4: empty label
        "food,,,\n"  # 5: no modality
        "food,Broken.,broken.png,\n"  # 6: unreadable image (found when features are made)
    )
    parsed = read_manifest(manifest)
    assert [(p.line, p.reason.split(":")[0]) for p in parsed.problems] == [
        (3, "image file not found"), (4, "empty label"), (5, "no modality (text, image and audio are all empty)"),
    ]  # fmt: skip
    table, problems = extractor_for(settings).table(parsed.rows)
    assert len(table) == 1 and table.lines == [2]
    assert [p.line for p in problems] == [6] and "unreadable image" in problems[0].reason
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"label": "food", "text": "A red apple."}\n{not json\n\n["a list"]\n')
    parsed = read_manifest(jsonl)
    assert len(parsed.rows) == 1 and [p.line for p in parsed.problems] == [2, 4]


@pytest.fixture(scope="module")
def aligner(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from polymodal.train.align import AlignConfig, train_align

    folder = tmp_path_factory.mktemp("align")
    pairs = [{"image": r["image"], "text": r["text"]} for r in stamp_rows(ALIGN_CATEGORIES)]
    manifest = write_manifest(folder / "pairs.jsonl", pairs)
    report = train_align(manifest, folder / "aligner", config=AlignConfig(seed=1), settings=settings, verbose=False)
    return folder / "aligner", report


def test_aligner_beats_the_label_bridge_on_held_out_pairs(aligner: tuple[Path, dict]) -> None:
    path, report = aligner
    recall = report["recall"]
    bridge, averaged = recall["label bridge"], recall["aligner + bridge (0.5 / 0.5)"]
    assert report["holdout"]["queries"] >= 20
    assert averaged["R@5"] + averaged["R@10"] > bridge["R@5"] + bridge["R@10"] + 10, recall
    assert (path / "aligner.safetensors").exists() and (path / "report.md").exists()


def test_indexing_with_an_aligner_reembeds_without_reanalysis(
    aligner: tuple[Path, dict], settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polymodal.analysis import Analyzer

    folder = tmp_path / "stamps"
    folder.mkdir()
    for row in stamp_rows(("vehicles",), 6):
        shutil.copy(row["image"], folder / Path(row["image"]).name)
    (folder / "note.md").write_text("# Cars\nA note about red cars and buses.\n")
    store = settings.with_(store=tmp_path / "store")
    collection = Collection(settings=store)
    first = collection.index(folder)
    assert first.outcomes[ANALYZED] == 7 and not first.errors
    before = {v.tobytes() for v in collection.store.all_vectors()[1]}

    def no_perception(*args, **kwargs):
        raise AssertionError("re-analysed instead of re-embedding from stored features")

    monkeypatch.setattr(Analyzer, "perceive_image", no_perception)
    monkeypatch.setattr(Analyzer, "perceive_text", no_perception)
    second = collection.index(folder, aligner=aligner[0])
    assert second.outcomes[REEMBEDDED] == 6 and second.outcomes[ANALYZED] == 0, second.to_dict()
    aligner_id = collection.analyzer.aligner.id
    models = [json.loads(m) for (m,) in collection.store.db.execute("SELECT models FROM contents")]
    assert sum(aligner_id in m["text"] for m in models) == 6  # the text note keeps its vectors
    after = {v.tobytes() for v in collection.store.all_vectors()[1]}
    assert len(before - after) == 6
    found = Collection(settings=store).search("A bus.", modality="image", k=3)
    hits = found.hits + found.weaker
    assert hits and Collection(settings=store).analyzer.aligner.id == aligner_id
    third = Collection(settings=store).index(folder, aligner="none")
    assert third.outcomes[REEMBEDDED] == 6
