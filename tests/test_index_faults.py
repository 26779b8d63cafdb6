"""Indexing under faults: killed at random points, files rewritten mid-index, a full disk, a read-only store, an
unreadable folder, pipes, links out of the folder, names that are not UTF-8. Real models on a small real subset
of the sample collection; real mounts, permissions and signals where the machine allows them (root: a tmpfs, a
read-only remount, a process without the capability to override permissions), else the same fault injected."""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from polymodal.analysis import Analysis, Analyzer
from polymodal.collection import Collection
from polymodal.index import ANALYZED, FAILED, LINKED, REMOVED, SKIPPED, UNCHANGED, file_sha256, scan
from polymodal.media.errors import MediaError
from polymodal.store.sqlite import SqliteStore, StoreUnavailable

SUBSET = {
    "notes": ["cats.md", "coffee.md", "dickens.txt", "farm_animals.md"],
    "photos": ["chelsea_cat.jpg", "coffee.jpg", "rocket.jpg"],
    "sounds": ["sheep.mp3", "cat.mp3"],
}
FILES = sum(len(names) for names in SUBSET.values())
CLI = [sys.executable, "-m", "polymodal.cli"]


def make_folder(samples: Path, root: Path) -> Path:
    for folder, names in SUBSET.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(samples / folder / name, root / folder / name)
    return root


def real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def snapshot(store: SqliteStore, root: Path) -> dict:
    """The store's content, by path relative to ``root``: what an interrupted run must end up with too."""
    db = store.db
    files = db.execute(
        "SELECT f.path, f.sha, (SELECT COUNT(*) FROM evidence e WHERE e.sha=f.sha), "
        "(SELECT COUNT(*) FROM vectors v WHERE v.sha=f.sha) FROM files f"
    ).fetchall()
    totals = {
        table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("files", "contents", "evidence", "evidence_fts", "vectors", "features")
    }
    unused = db.execute("SELECT COUNT(*) FROM contents WHERE sha NOT IN (SELECT sha FROM files)").fetchone()[0]
    missing = db.execute("SELECT COUNT(*) FROM files WHERE sha NOT IN (SELECT sha FROM contents)").fetchone()[0]
    return {
        "files": sorted((os.path.relpath(p, root), sha, ev, vec) for p, sha, ev, vec in files),
        "totals": totals,
        "unused contents": unused,
        "files without content": missing,
    }


def consistent(store: SqliteStore) -> None:
    """Every file points at a whole content; nothing is left of contents no file points at."""
    found = snapshot(store, Path("/"))
    assert found["unused contents"] == 0 and found["files without content"] == 0
    assert found["totals"]["evidence"] == found["totals"]["evidence_fts"]
    assert all(evidence > 0 and vectors > 0 for _, _, evidence, vectors in found["files"])


def run_cli(*args: object, unprivileged: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """The command line in a fresh process; ``unprivileged``: without the power to override file permissions
    (what root has), so that a folder without read permission is unreadable to it as to any user."""
    prefix: list[str] = []
    if unprivileged and os.geteuid() == 0:
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    command = [*prefix, *CLI, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A small RAM disk at ``path`` when this machine lets us mount one (root); yields whether it did."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
        mounted = done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            gc.collect()  # connections of finished threads
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """A file taking all free space of ``disk`` but ``leave`` bytes."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for block in (1 << 16, 1 << 12, 1 << 9):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return filler


def files_state(directory: Path) -> dict[str, tuple[int, int, str]]:
    """(size, mtime, sha256) of every file under ``directory``."""
    found = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        info = path.stat()
        found[str(path.relative_to(directory))] = (info.st_size, info.st_mtime_ns, file_sha256(path))
    return found


@pytest.fixture(scope="module")
def reference(samples: Path, settings, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The subset indexed in one uninterrupted run: the state every faulty run must reach."""
    root = make_folder(samples, real(tmp_path_factory.mktemp("reference")) / "media")
    collection = Collection(settings=settings.with_(store=root.parent / "store"))
    report = collection.index(root)
    assert not report.errors and report.outcomes[ANALYZED] == FILES
    expected = snapshot(collection.store, root)
    collection.close()
    return expected


def _count_files(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store / 'polymodal.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    except sqlite3.Error:
        return 0


# --- killed at random points --------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_at_a_random_point_resumes_to_the_uninterrupted_state(seed, reference, samples, settings, tmp_path):
    root = make_folder(samples, real(tmp_path) / "media")
    store = tmp_path / "store"
    rng = random.Random(seed)
    written, delay = rng.randrange(FILES), rng.uniform(0.0, 0.4)  # kill after this many files, and this long
    command = [*CLI, "index", str(root), "--store", str(store), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline:
        if (store / "polymodal.sqlite").exists() and _count_files(store) >= written:
            break
        time.sleep(0.02)
    time.sleep(delay)
    process.kill()
    process.wait()
    assert process.returncode == -9 and _count_files(store) < FILES  # killed mid-way, not after the end

    resumed = Collection(settings=settings.with_(store=store))
    report = resumed.index(root)
    assert not report.errors and report.stopped is None, report.errors
    assert snapshot(resumed.store, root) == reference
    assert resumed.index(root).outcomes == {UNCHANGED: FILES}


# --- a file rewritten while it is indexed -------------------------------------------------------------------
OLD = "# Espresso\nEspresso is coffee brewed by forcing hot water through finely ground beans.\n"
NEW = "# Kittens\nA small kitten sleeps on a warm windowsill, purring in the sun all afternoon\n"
assert len(OLD) == len(NEW)  # the same size: a rewrite with the mtime put back is told by its ctime and hash


def text_of(item) -> str:
    return " ".join(e.text for e in item.evidence).lower()


@pytest.mark.parametrize("when", ["before analysis", "after analysis", "same size and mtime"])
def test_a_file_rewritten_while_indexed_never_poisons_the_content_cache(when, settings, tmp_path, monkeypatch):
    root = real(tmp_path) / "media"
    root.mkdir()
    (root / "a.md").write_text(OLD)
    (root / "b.md").write_text(OLD)  # the same old content: must keep the old evidence
    analyze = Analyzer.analyze_file
    rewritten: list[Path] = []

    def rewrite(path: Path) -> None:
        if path.name == "a.md" and not rewritten:
            before = path.stat()
            path.write_text(NEW)
            if when == "same size and mtime":
                os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            rewritten.append(path)

    def analyze_file(self, path, *args, **kwargs):
        if when != "after analysis":
            rewrite(Path(path))  # hashed already: the analysis reads the new bytes
        analysis = analyze(self, path, *args, **kwargs)
        if when == "after analysis":
            rewrite(Path(path))  # analysed: the file is no longer what was analysed
        return analysis

    monkeypatch.setattr(Analyzer, "analyze_file", analyze_file)
    c = Collection(settings=settings.with_(store=tmp_path / "store"))
    report = c.index(root)
    assert rewritten and not report.errors
    a, b = c.item(str(root / "a.md")), c.item(str(root / "b.md"))
    assert a.sha256 == hashlib.sha256(NEW.encode()).hexdigest() and "kitten" in text_of(a)
    assert b.sha256 == hashlib.sha256(OLD.encode()).hexdigest()
    assert "espresso" in text_of(b) and "kitten" not in text_of(b)
    assert c.index(root).outcomes == {UNCHANGED: 2}


def test_an_image_rewritten_between_decoding_and_its_batch_is_analysed_again(samples, settings, tmp_path, monkeypatch):
    root = real(tmp_path) / "media"
    root.mkdir()
    cat, coffee = samples / "photos" / "chelsea_cat.jpg", samples / "photos" / "coffee.jpg"
    shutil.copy(cat, root / "a.jpg")  # becomes coffee while its batch waits
    shutil.copy(cat, root / "b.jpg")
    shutil.copy(coffee, root / "c.jpg")
    finish = Analyzer.finish_images

    def finish_images(self, prepared, *args, **kwargs):
        if (root / "a.jpg").read_bytes() != coffee.read_bytes():
            shutil.copy(coffee, root / "a.jpg")
        return finish(self, prepared, *args, **kwargs)

    monkeypatch.setattr(Analyzer, "finish_images", finish_images)
    c = Collection(settings=settings.with_(store=tmp_path / "store"))
    report = c.index(root)
    assert not report.errors
    a, b, c_ = (c.item(str(root / name)) for name in ("a.jpg", "b.jpg", "c.jpg"))
    assert a.sha256 == c_.sha256 == file_sha256(coffee) and a.evidence == c_.evidence
    assert b.sha256 == file_sha256(cat) and b.evidence != a.evidence


# --- a full disk ----------------------------------------------------------------------------------------------
def test_a_full_disk_stops_indexing_with_a_report_and_the_store_stays_readable(
    reference, samples, settings, tmp_path, monkeypatch
):
    root = make_folder(samples, real(tmp_path) / "media")
    disk = tmp_path / "disk"
    with tmpfs(disk, "24m") as mounted:
        store = disk / "store"
        c = Collection(settings=settings.with_(store=store))
        assert c.index(root / "notes").outcomes == {ANALYZED: 4}
        if mounted:
            filler = fill(disk, leave=160 * 1024)  # a file or two fit, then the disk is full
        else:  # no mount here: the database says what SQLite says on a full disk
            monkeypatch.setattr(SqliteStore, "_write_analysis", _disk_full)
        report = c.index(root)
        assert report.stopped and f"disk full while writing {store}" in report.stopped and "ENOSPC" in report.stopped
        assert any("disk full" in reason for _, reason in report.errors)
        c.close()
        del c
        gc.collect()

        # Readers need not write: a fresh process shows the status and searches while the disk is full.
        status = run_cli("status", "--store", store, "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["files"] >= 4
        found = run_cli("search", "espresso coffee", "--store", store, "--json", "-k", "3")
        assert found.returncode == 0, found.stderr
        assert any(Path(hit["path"]).name == "coffee.md" for hit in json.loads(found.stdout)["hits"])
        reader = Collection(settings=settings.with_(store=store))
        consistent(reader.store)
        reader.close()

        if mounted:
            filler.unlink()
        else:
            monkeypatch.undo()
        resumed = Collection(settings=settings.with_(store=store))
        report = resumed.index(root)
        assert not report.errors and report.stopped is None
        assert snapshot(resumed.store, root) == reference
        resumed.close()


def _disk_full(*args, **kwargs):
    raise sqlite3.OperationalError("database or disk is full")


# --- a read-only store ----------------------------------------------------------------------------------------
def test_a_read_only_store_is_searched_and_nothing_in_it_is_written(samples, settings, tmp_path):
    root = real(tmp_path) / "media"
    (root / "notes").mkdir(parents=True)
    for name in SUBSET["notes"]:
        shutil.copy(samples / "notes" / name, root / "notes" / name)
    shutil.copy(samples / "photos" / "coffee.jpg", root / "coffee.jpg")
    disk = tmp_path / "disk"
    with tmpfs(disk, "24m") as mounted:
        store = disk / "store"
        writer = Collection(settings=settings.with_(store=store))
        writer.index(root)
        writer.close()
        del writer
        gc.collect()
        before = files_state(store)
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        else:
            subprocess.run(["chmod", "-R", "a-w", str(store)], check=True)
        try:
            status = run_cli("status", "--store", store, "--json", unprivileged=True)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["files"] == 5
            found = run_cli("search", "espresso", "--store", store, "--json", "-k", "3", unprivileged=True)
            assert found.returncode == 0, found.stderr
            assert "coffee.md" in {Path(hit["path"]).name for hit in json.loads(found.stdout)["hits"]}

            # Above the exact limit the vector index cannot save its snapshot here: it is kept in memory.
            reader = Collection(settings=settings.with_(store=store, exact_search_limit=2))
            result = reader.search("espresso", k=3)
            assert result.approximate and "coffee.md" in {Path(hit.path).name for hit in result.hits}
            assert reader.status()["read_only"] is True
            assert reader.item(str(root / "coffee.jpg")).modality == "image"
            (root / "new.md").write_text("# New\nA note written after the store was made read-only.\n")
            report = reader.index(root)  # a write: stops, saying why
            assert report.stopped and "read-only" in report.stopped
            reader.close()
        finally:
            if mounted:
                subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
            else:
                subprocess.run(["chmod", "-R", "u+w", str(store)], check=True)
        assert files_state(store) == before


def test_opening_a_store_to_read_writes_nothing(tmp_path):
    store = SqliteStore(tmp_path / "store")
    store.record_error("/somewhere/a.txt", "empty file")
    generation = store.generation
    store.close()
    before = files_state(tmp_path / "store")
    reader = SqliteStore(tmp_path / "store", create=False, readonly=True)
    assert reader.generation == generation and reader.errors() == [("/somewhere/a.txt", "empty file")]
    with pytest.raises(StoreUnavailable, match="read-only"):
        reader.record_error("/somewhere/b.txt", "empty file")
    reader.close()
    again = SqliteStore(tmp_path / "store", create=False)  # read-write, but only opened
    assert again.generation == generation
    again.close()
    after = files_state(tmp_path / "store")
    assert after["polymodal.sqlite"] == before["polymodal.sqlite"]
    with pytest.raises(Exception, match="no store"):
        SqliteStore(tmp_path / "missing", create=False)


# --- thumbnails -------------------------------------------------------------------------------------------------
def test_thumbnails_are_written_with_their_content_and_orphans_are_cleaned(tmp_path, monkeypatch):
    store = SqliteStore(tmp_path / "store")
    thumbs = tmp_path / "store" / "thumbs"
    store.save("/v/a.mp4", "sha-a", 10, 1, Analysis("video", "mp4", thumbnails=[b"a0", b"a1"]), str)
    assert store.thumbnail("sha-a", 1).read_bytes() == b"a1"

    write = SqliteStore._write_thumbnails

    def then_disk_full(self, sha, thumbnails):
        write(self, sha, thumbnails)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SqliteStore, "_write_thumbnails", then_disk_full)
    with pytest.raises(StoreUnavailable, match="disk full"):
        store.save("/v/b.mp4", "sha-b", 10, 1, Analysis("video", "mp4", thumbnails=[b"b0"]), str)
    assert store.file("/v/b.mp4") is None and store.content_state("sha-b") is None
    assert store.thumbnail("sha-b", 0) is None
    with pytest.raises(StoreUnavailable):  # replacing: the old thumbnails stay with the old content
        store.save("/v/a.mp4", "sha-a", 10, 2, Analysis("video", "mp4", thumbnails=[b"new"]), str)
    assert store.thumbnail("sha-a", 1).read_bytes() == b"a1" and store.file("/v/a.mp4").mtime_ns == 1
    monkeypatch.undo()

    (thumbs / "sha-c.999.part").mkdir()  # what a crash leaves: a half-written folder, a folder never committed
    (thumbs / "sha-d").mkdir()
    (thumbs / "sha-d" / "0.jpg").write_bytes(b"d0")
    assert store.clean_orphans() == 2
    assert sorted(p.name for p in thumbs.iterdir()) == ["sha-a"]
    store.remove_file("/v/a.mp4")
    assert not (thumbs / "sha-a").exists()


# --- folders that cannot be read, pipes, links, names -------------------------------------------------------
def test_an_unreadable_folder_keeps_its_items_and_the_error_is_kept(samples, settings, tmp_path):
    root = real(tmp_path) / "media"
    (root / "private").mkdir(parents=True)
    shutil.copy(samples / "notes" / "coffee.md", root / "coffee.md")
    for name in ("cats.md", "dickens.txt"):
        shutil.copy(samples / "notes" / name, root / "private" / name)
    store = tmp_path / "store"
    c = Collection(settings=settings.with_(store=store))
    assert c.index(root).outcomes == {ANALYZED: 3}

    os.chmod(root / "private", 0)
    try:
        done = run_cli("index", root, "--store", store, "--json", unprivileged=True)
    finally:
        os.chmod(root / "private", 0o755)
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["outcomes"] == {UNCHANGED: 1}  # nothing removed
    reasons = {e["path"]: e["reason"] for e in report["errors"]}
    assert "permission denied" in reasons[str(root / "private")]
    status = c.status()
    assert status["files"] == 3 and status["errors"] == 1
    assert status["recent_errors"][0]["path"] == str(root / "private")

    assert c.index(root).outcomes == {UNCHANGED: 3}  # readable again: nothing was lost, the error is gone
    assert c.status()["errors"] == 0


def test_pipes_loops_broken_links_and_odd_names_are_named_and_never_stop_the_run(samples, tmp_path):
    base = real(tmp_path)
    root = base / "media"
    root.mkdir()
    shutil.copy(samples / "notes" / "coffee.md", root / "coffee.md")
    os.mkfifo(root / "pipe.md")
    (root / "dangling.md").symlink_to(root / "missing.md")
    secret = base / "secret.txt"
    secret.write_text("The combination of the vault is 4-8-15-16-23-42.\n")
    (root / "out.txt").symlink_to(secret)
    odd = os.fsencode(root) + b"/caf\xe9.md"
    with open(odd, "wb") as handle:
        handle.write(b"# Cafe\nA note whose name is Latin-1, not UTF-8.\n")
    os.mkfifo(base / "pipe-arg")
    (base / "loop").symlink_to(base / "loop")
    (base / "gone").symlink_to(base / "nowhere")

    store = tmp_path / "store"
    arguments = (root, base / "pipe-arg", base / "loop", base / "gone")
    done = run_cli("index", *arguments, "--store", store, "--json", timeout=300)
    assert done.returncode == 3, done.stderr  # some errors; no crash, and no hang (the timeout)
    report = json.loads(done.stdout)
    reasons = {e["path"]: e["reason"] for e in report["errors"]}
    assert "named pipe (FIFO)" in reasons[str(root / "pipe.md")]
    assert "named pipe (FIFO)" in reasons[str(base / "pipe-arg")]
    assert reasons[str(base / "loop")] == "a loop of symbolic links"
    assert reasons[str(base / "gone")] == f"broken link to {base / 'nowhere'}"
    assert reasons[str(root / "dangling.md")] == f"broken link to {root / 'missing.md'}"
    assert "not valid UTF-8" in reasons[str(root) + "/caf\\xe9.md"]
    notes = {n["path"]: n["note"] for n in report["notes"]}
    assert "outside the indexed folders" in notes[str(root / "out.txt")] and str(secret) in notes[str(root / "out.txt")]
    assert report["outcomes"] == {ANALYZED: 1, FAILED: 3, SKIPPED: 1}
    status = run_cli("status", "--store", store, "--json")
    assert json.loads(status.stdout)["files"] == 1 and json.loads(status.stdout)["errors"] == 3


def test_a_pipe_is_never_opened_for_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    found = scan([tmp_path])
    assert found.files == [] and "named pipe (FIFO)" in found.errors[0][1]
    started = time.monotonic()
    with pytest.raises(MediaError, match="named pipe"):  # one that appears after the scan: refused, not waited on
        file_sha256(tmp_path / "pipe.txt")
    assert time.monotonic() - started < 5


def test_links_out_of_the_folder_are_followed_only_when_asked(samples, settings, tmp_path):
    base = real(tmp_path)
    root, outside = base / "media", base / "outside"
    (root / "notes").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(samples / "notes" / "coffee.md", root / "notes" / "coffee.md")
    (outside / "vault.md").write_text("# Vault\nThe combination of the vault is kept on a yellow sticky note.\n")
    (root / "notes" / "x.md").symlink_to(outside / "vault.md")
    (root / "more").symlink_to(outside)
    c = Collection(settings=settings.with_(store=tmp_path / "store"))

    report = c.index(root)
    assert report.outcomes == {ANALYZED: 1, SKIPPED: 2} and not report.errors
    assert {Path(p).name for p, _ in report.notes} == {"x.md", "more"}
    assert [item.path for item in c.items()[1]] == [str(root / "notes" / "coffee.md")]

    report = c.index(root, follow_links=True)  # kept under the links' own paths, inside the folder
    assert report.outcomes == {UNCHANGED: 1, ANALYZED: 1, LINKED: 1}
    assert sorted(item.path for item in c.items()[1]) == sorted(
        str(p) for p in (root / "more" / "vault.md", root / "notes" / "coffee.md", root / "notes" / "x.md")
    )
    assert Path(c.search("combination of the vault").hits[0].path).name in ("x.md", "vault.md")

    assert c.index(root).outcomes == {UNCHANGED: 1, SKIPPED: 2, REMOVED: 2}  # not followed again: forgotten
    assert c.status()["files"] == 1


def test_a_file_reached_through_dotdot_or_a_linked_folder_is_one_item(samples, settings, tmp_path):
    base = real(tmp_path)
    root = base / "media"
    (root / "notes").mkdir(parents=True)
    (root / "sub").mkdir()
    for name in ("coffee.md", "cats.md"):
        shutil.copy(samples / "notes" / name, root / "notes" / name)
    (root / "notes" / "same.md").symlink_to("coffee.md")  # a link inside the folder: the file itself
    (root / "alias").symlink_to(root / "notes")  # a linked folder inside: walked once, as notes/
    (base / "link").symlink_to(root)
    c = Collection(settings=settings.with_(store=tmp_path / "store"))

    report = c.index(root / "sub" / ".." / "notes", base / "link", root)
    assert report.outcomes == {ANALYZED: 2} and not report.errors
    assert sorted(item.path for item in c.items()[1]) == [str(root / "notes" / n) for n in ("cats.md", "coffee.md")]
    assert c.item(str(base / "link" / "alias" / "same.md")).path == str(root / "notes" / "coffee.md")
    c.remove(str(root / "sub" / ".." / "notes" / "cats.md"))
    assert c.status()["files"] == 1
    assert c.index(base / "link").outcomes == {UNCHANGED: 1, ANALYZED: 1}
