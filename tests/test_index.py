"""Incremental, resumable indexing that survives bad files: real models on real files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polymodal.collection import Collection
from polymodal.index import ANALYZED, FAILED, LINKED, REMOVED, UNCHANGED

PHOTOS = ["chelsea_cat.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg", "motorcycle.jpg"]


@pytest.fixture
def folder(samples: Path, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    (root / "photos").mkdir(parents=True)
    for name in PHOTOS[:3]:
        shutil.copy(samples / "photos" / name, root / "photos" / name)
    shutil.copy(samples / "notes" / "coffee.md", root / "coffee.md")
    return root


def collection(settings, tmp_path: Path, name: str = "store") -> Collection:
    return Collection(settings=settings.with_(store=tmp_path / name))


def test_reindex_does_only_what_changed(folder, settings, tmp_path):
    c = collection(settings, tmp_path)
    assert c.index(folder).outcomes == {ANALYZED: 4}
    assert c.index(folder).outcomes == {UNCHANGED: 4}

    os.utime(folder / "coffee.md", None)  # touched, same content: hashed, not re-analyzed
    assert c.index(folder).outcomes == {UNCHANGED: 3, LINKED: 1}

    (folder / "coffee.md").write_text("# Tea\nGreen tea is steeped, not brewed under pressure.\n")
    assert c.index(folder).outcomes == {UNCHANGED: 3, ANALYZED: 1}
    assert "Green tea" in c.search("tea", modality="text").hits[0].why[0].text

    (folder / "photos" / "rocket.jpg").rename(folder / "rocket-moved.jpg")  # moved: not re-analyzed
    assert c.index(folder).outcomes == {UNCHANGED: 3, LINKED: 1, REMOVED: 1}

    (folder / "photos" / "coffee.jpg").unlink()
    report = c.index(folder)
    assert report.outcomes == {UNCHANGED: 3, REMOVED: 1}
    assert c.index(folder).outcomes == {UNCHANGED: 3}
    assert c.status()["files"] == 3 and c.status()["contents"] == 3
    assert all(Path(h.path).name != "coffee.jpg" for h in c.search("coffee", k=10).hits)


def test_bad_files_are_reported_and_good_ones_indexed(folder, settings, tmp_path):
    (folder / "empty.txt").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes((folder / "photos" / "coffee.jpg").read_bytes()[:3000])
    (folder / "noise.png").write_bytes(os.urandom(5000))
    (folder / "notes-named.jpg").write_text("A note about espresso saved with the wrong extension.")
    (folder / "fake.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40)
    (folder / "unreadable.md").symlink_to(folder / "does-not-exist.md")

    c = collection(settings, tmp_path)
    report = c.index(folder)
    failed = dict(report.errors)
    assert set(map(lambda p: Path(p).name, failed)) == {
        "empty.txt",
        "truncated.jpg",
        "noise.png",
        "fake.wav",
        "unreadable.md",
    }
    assert all(reason for reason in failed.values())
    assert report.outcomes[ANALYZED] == 5 and report.outcomes[FAILED] == 5
    assert any(
        "named .jpg" in note for _, note in report.notes
    )  # mislabelled but readable: indexed by content
    assert c.item(str(folder / "notes-named.jpg")).modality == "text"
    assert c.status()["errors"] == 5

    (folder / "empty.txt").unlink()
    assert c.index(folder).outcomes[FAILED] == 4
    assert c.status()["errors"] == 4


def test_cli_reports_errors_with_exit_code(folder, tmp_path):
    (folder / "empty.md").write_bytes(b"")
    store = tmp_path / "cli-store"
    run = [sys.executable, "-m", "polymodal.cli"]
    done = subprocess.run(
        [*run, "index", str(folder), "--store", str(store), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr
    assert '"reason": "empty file"' in done.stdout
    missing = subprocess.run([*run, "show", "999", "--store", str(store)], capture_output=True, text=True)
    assert missing.returncode == 2 and "no item" in missing.stderr and "Traceback" not in missing.stderr


def state(c: Collection) -> list[tuple]:
    db = c.store.db
    return sorted(
        db.execute(
            "SELECT f.path, f.sha, (SELECT COUNT(*) FROM evidence e WHERE e.sha=f.sha), "
            "(SELECT COUNT(*) FROM vectors v WHERE v.sha=f.sha) FROM files f"
        ).fetchall()
    )


def test_killed_index_resumes_to_the_same_state(samples, settings, tmp_path):
    root = tmp_path / "media"
    shutil.copytree(samples / "photos", root / "photos")
    shutil.copytree(samples / "notes", root / "notes")
    reference = collection(settings, tmp_path, "reference")
    reference.index(root)

    store = tmp_path / "killed"
    env = {**os.environ, "POLYMODAL_CACHE": str(settings.cache)}
    command = [sys.executable, "-m", "polymodal.cli", "index", str(root), "--store", str(store), "--json"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (store / "polymodal.sqlite").exists() and _count_files(store) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = _count_files(store)
    assert 0 < partial < len(state(reference))

    resumed = collection(settings, tmp_path, "killed")
    report = resumed.index(root)
    assert report.outcomes[UNCHANGED] == partial
    assert state(resumed) == state(reference)


def _count_files(store: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(store / "polymodal.sqlite", timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_changing_a_model_redoes_only_what_it_affects(folder, settings, tmp_path, monkeypatch):
    from polymodal.models.image import EfficientNetLite0
    from polymodal.models.text import UseMultilingual

    c = collection(settings, tmp_path)
    c.index(folder)
    monkeypatch.setattr(UseMultilingual, "version", "3-int8-next")  # a new text encoder: re-embed, don't re-perceive
    assert c.index(folder).outcomes == {"re-embedded": 4}
    assert {m.split("/")[0] for m in c.status()["models"] if m.startswith("use-multilingual")} == {
        "use-multilingual@3-int8-next"
    }
    monkeypatch.setattr(EfficientNetLite0, "version", "2")  # a new image model: only the images are re-analyzed
    assert c.index(folder).outcomes == {ANALYZED: 3, UNCHANGED: 1}
    assert Path(c.search("a cat", modality="image").hits[0].path).name == "chelsea_cat.jpg"


def test_hnsw_index_above_the_exact_limit_agrees_with_exact_search(indexed, settings):
    approximate = Collection(settings=settings.with_(exact_search_limit=10))
    for query in ("a cat", "coffee", "it was the best of times", "a dog barking"):
        fast = approximate.search(query, k=5)
        assert fast.approximate
        assert [h.path for h in fast.hits[:3]] == [h.path for h in indexed.search(query, k=5).hits[:3]]
