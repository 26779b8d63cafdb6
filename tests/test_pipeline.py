"""The indexing pipeline (decoding threads, classifier batches of 8) stores the same evidence as one file at a time.

Real models on real files: the sample photos and scan, Tux Paint stamps, a duplicate, a truncated JPEG, a note.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TUXPAINT
from textnorm import says

from polymodal.analysis import Analyzer
from polymodal.collection import fts_text
from polymodal.index import ANALYZED, FAILED, LINKED, Indexer
from polymodal.store.sqlite import SqliteStore


@pytest.fixture(scope="module")
def mixed_folder(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(samples / "photos", root / "photos")
    shutil.copy(samples / "scans" / "page.png", root / "page.png")  # a scan: the OCR gate opens
    shutil.copy(samples / "photos" / "coffee.jpg", root / "photos" / "coffee-copy.jpg")  # same content
    shutil.copy(samples / "notes" / "coffee.md", root / "coffee.md")
    (root / "truncated.jpg").write_bytes((samples / "photos" / "rocket.jpg").read_bytes()[:3000])
    stamps = sorted((TUXPAINT / "animals").rglob("*.png"))[:12]
    for i, stamp in enumerate(stamps):
        shutil.copy(stamp, root / f"stamp-{i:02d}-{stamp.name}")
    return root


def index_with(folder: Path, settings, directory: Path, threads: int) -> tuple[SqliteStore, dict]:
    store = SqliteStore(directory)
    indexer = Indexer(store, Analyzer(settings), fts_text)
    indexer.decode_threads = threads
    report = indexer.index([folder])
    return store, report


def evidence_by_path(store: SqliteStore) -> dict[str, list[tuple]]:
    rows = store.db.execute(
        "SELECT f.path, e.kind, e.text, e.score FROM files f JOIN evidence e ON e.sha = f.sha ORDER BY f.path, e.ord"
    ).fetchall()
    out: dict[str, list[tuple]] = {}
    for path, kind, text, score in rows:
        out.setdefault(Path(path).name, []).append((kind, text, score))
    return out


def vectors_by_path(store: SqliteStore) -> dict[str, np.ndarray]:
    rows = store.db.execute(
        "SELECT f.path, v.vector FROM files f JOIN vectors v ON v.sha = f.sha WHERE v.kind = 'labels'"
    ).fetchall()
    return {Path(path).name: np.frombuffer(blob, np.float32) for path, blob in rows}


def test_batched_pipeline_gives_the_evidence_of_the_sequential_path(mixed_folder, settings, tmp_path, monkeypatch):
    from polymodal.models.image import EfficientNetLite0

    batches: list[int] = []
    analyze = EfficientNetLite0.analyze
    monkeypatch.setattr(EfficientNetLite0, "analyze", lambda self, b: batches.append(len(b)) or analyze(self, b))
    one_by_one, sequential = index_with(mixed_folder, settings, tmp_path / "sequential", threads=0)
    assert set(batches) == {1}
    batches.clear()
    batched, pipelined = index_with(mixed_folder, settings, tmp_path / "batched", threads=2)
    assert max(batches) == 8
    assert pipelined.outcomes == sequential.outcomes
    assert pipelined.outcomes[LINKED] == 1 and pipelined.outcomes[FAILED] == 1
    assert pipelined.outcomes[ANALYZED] == len(list(mixed_folder.rglob("*"))) - 3  # folder, duplicate, truncated
    assert dict(pipelined.errors).keys() == dict(sequential.errors).keys()
    assert {Path(p).name for p, _ in pipelined.errors} == {"truncated.jpg"}
    expected, found = evidence_by_path(one_by_one), evidence_by_path(batched)
    assert found.keys() == expected.keys()
    for name, rows in expected.items():
        assert_same_evidence(found[name], rows, name)
    assert any(kind == "ocr" for kind, _, _ in found["page.png"])
    ours, theirs = vectors_by_path(batched), vectors_by_path(one_by_one)
    assert all(float(ours[name] @ theirs[name]) > 0.9999 for name in theirs)


def assert_same_evidence(ours: list[tuple], theirs: list[tuple], name: str) -> None:
    """The same evidence, up to rounding: a batch of 8 and a batch of 1 may run different CPU kernels, so labels
    whose scores tie within 1e-4 may swap places, or trade the last of the top-10 places."""
    assert [k for k, _, _ in ours] == [k for k, _, _ in theirs], name
    assert [(k, t) for k, t, _ in ours if k != "label"] == [(k, t) for k, t, _ in theirs if k != "label"], name
    mine, other = ({t: s or 0.0 for k, t, s in side if k == "label"} for side in (ours, theirs))
    for label in mine.keys() & other.keys():
        assert abs(mine[label] - other[label]) <= 1e-4, (name, label)
    floor = min([*mine.values(), *other.values()], default=0.0)
    for label in mine.keys() ^ other.keys():  # only at the tail, in a tie
        assert abs(mine.get(label, other.get(label, 0.0)) - floor) <= 1e-4, (name, label)
    ours_scores = [s or 0.0 for k, _, s in ours if k != "label"]
    assert np.allclose(ours_scores, [s or 0.0 for k, _, s in theirs if k != "label"], atol=1e-4), name


def test_reindexing_with_the_pipeline_changes_nothing(mixed_folder, settings, tmp_path):
    store, first = index_with(mixed_folder, settings, tmp_path / "store", threads=2)
    again = Indexer(store, Analyzer(settings), fts_text).index([mixed_folder])
    assert again.outcomes == {"unchanged": first.outcomes[ANALYZED] + first.outcomes[LINKED], FAILED: 1}


def test_short_recordings_are_indexed_together_sharing_whisper_windows(settings, tmp_path, monkeypatch):
    from polymodal.models.speech import WhisperBase
    from polymodal.samples import find_in_wheel

    folder = tmp_path / "memos"
    folder.mkdir()
    said = {
        "en/quick_brown_fox.wav": "quick brown fox",
        "en/hello_world.wav": "world",
        "fr/pangrama.wav": "whisky",
        "es/hola_mundo.wav": "mundo",
        "pt/pangrama.wav": "raposa",
    }
    for name in said:
        shutil.copy(find_in_wheel("pytest-audioeval", "0.1.3", f"audio/{name}"), folder / name.replace("/", "-"))
    shutil.copy(folder / "en-hello_world.wav", folder / "z-copy.wav")  # after its original: linked
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(40))
    calls: list[int] = []
    many = WhisperBase.transcribe_many

    def counted(self, clips, *args):
        calls.append(len(clips))
        return many(self, clips, *args)

    monkeypatch.setattr(WhisperBase, "transcribe_many", counted)
    store, report = index_with(folder, settings, tmp_path / "store", threads=2)
    assert calls == [len(said)]  # one batch: every clip with speech in one call
    assert report.outcomes[ANALYZED] == len(said) and report.outcomes[LINKED] == 1 and report.outcomes[FAILED] == 1
    assert {Path(p).name for p, _ in report.errors} == {"broken.wav"}
    found = evidence_by_path(store)
    for name, word in said.items():
        transcript = " ".join(t for kind, t, _ in found[name.replace("/", "-")] if kind == "transcript").lower()
        assert says(transcript, word), (name, transcript)
