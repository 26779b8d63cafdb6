"""Index folders incrementally: scan -> decide -> analyze -> write, one atomic transaction per file.

A file is skipped when its path, size and mtime are unchanged; otherwise it is hashed, and content that
is already analyzed (a moved, copied or touched-but-identical file) is linked without re-analysis.
Files that disappeared from an indexed folder are removed; the items under a folder that cannot be listed
are kept (it is unreadable, not deleted). One bad file is recorded and never stops the run; a store that
cannot be written (disk full, read-only) stops it cleanly, with a report, and the next run resumes.

Paths are keys after resolving: roots and files are real paths, so a file reached through ``..`` or a
linked folder is one item. A symbolic link whose target is outside the indexed folders is skipped (with a
note) unless ``follow_links``; then it is indexed under the link's own path. Only regular files are opened.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat as stats
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from polymodal.analysis import Analysis, Analyzer, PreparedAudio, PreparedImage
from polymodal.media.audio import audio_duration
from polymodal.media.detect import SUPPORTED_EXTENSIONS, detect
from polymodal.media.errors import MediaError
from polymodal.perceivers.faces import FACES_UPDATED, FaceHook
from polymodal.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

# Images are classified in batches of this many, decoded ahead by the indexer's threads (at most WINDOW files
# ahead of the one being written, which bounds memory); two thirds of a photo's CPU time is decoding.
IMAGE_BATCH = 8
WINDOW = 2 * IMAGE_BATCH
# Short recordings are decoded ahead too and finished together, so that their speech shares Whisper windows
# (a 3 s clip alone costs a whole 30 s window); a batch ends at this much audio or WINDOW clips.
PACKED_AUDIO_SECONDS = 15.0
AUDIO_BATCH_SECONDS = 90.0
# A file modified this recently before it was hashed may change again within the same mtime tick (coarse file
# system clocks): it is hashed again after its analysis, not trusted by its size and mtime ("racy git").
RACY_NS = 2_000_000_000
# A file that changes under the indexer is analysed again, at most this many times in all.
MAX_ATTEMPTS = 3

# Outcomes of one file.
ANALYZED, REEMBEDDED, LINKED, UNCHANGED, FAILED, REMOVED, SKIPPED = (
    "analyzed",
    "re-embedded",
    "linked",
    "unchanged",
    "failed",
    "removed",
    "skipped",
)


@dataclass
class IndexReport:
    outcomes: Counter = field(default_factory=Counter)
    per_modality: Counter = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None  # why the run ended early (the store could not be written), else None

    @property
    def files(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome not in (REMOVED, SKIPPED))

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "seconds": round(self.seconds, 2),
            "outcomes": dict(self.outcomes),
            "per_modality": dict(self.per_modality),
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
            "notes": [{"path": p, "note": n} for p, n in self.notes],
            "stopped": self.stopped,
        }


Progress = Callable[[int, int, str], None]  # (done, total, current path)
VideoProgress = Callable[[str, float, float], None]  # (path, seconds of the video read, its duration)


@dataclass
class Scan:
    """What :func:`scan` found: file keys to index, and what it could not or would not take."""

    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # the real folders given, walked
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path as shown, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # links skipped, and why
    unreadable: list[str] = field(default_factory=list)  # folders that could not be listed: their items are kept
    skipped: int = 0  # links out of the indexed folders
    failed: int = 0  # files found that cannot be indexed (a pipe, a broken link, a name that is not UTF-8)


def scan(paths: Iterable[Path], follow_links: bool = False) -> Scan:
    """Supported regular files under ``paths`` (each folder in sorted order, its files before its subfolders),
    as real paths without duplicates, and the paths that could not be taken, with reasons."""
    return _Scanner(follow_links).run(paths)


class _Scanner:
    def __init__(self, follow_links: bool):
        self.follow_links = follow_links
        self.found = Scan()
        self.keys: dict[str, None] = {}  # insertion-ordered set
        self.visited: set[tuple[int, int]] = set()  # (device, inode) of folders walked: no loop twice
        self.roots: list[str] = []  # the folders given, as real paths: links out of them are not followed

    def run(self, paths: Iterable[Path]) -> Scan:
        given = [self._root(Path(p)) for p in paths]
        self.found.folders = [p for p in given if p is not None and p.is_dir()]
        self.roots = [str(folder) for folder in self.found.folders]
        for root in given:
            if root is None:
                continue
            if root in self.found.folders:
                self._walk(root)
            else:
                self._add(root)
        self.found.files = [Path(key) for key in self.keys]
        return self.found

    def _root(self, path: Path) -> Path | None:
        """A path given to index, resolved; None (with the reason in ``errors``) when it is no file or folder."""
        given = Path(os.path.abspath(os.path.expanduser(path)))
        shown = display_path(given)
        if shown != str(given):
            self.found.errors.append((shown, "the name is not valid UTF-8 (shown with escapes); rename it to index it"))
            return None
        try:
            info = os.stat(given)
        except OSError as exc:
            self.found.errors.append((shown, _unreachable(given, exc, "no such file or folder")))
            return None
        if not (stats.S_ISDIR(info.st_mode) or stats.S_ISREG(info.st_mode)):
            self.found.errors.append((shown, f"{_kind(info.st_mode)}, not a file or folder"))
            return None
        return Path(os.path.realpath(given))

    def _walk(self, top: Path) -> None:
        # Paths are plain strings here: a Path per entry costs 3x (17k files of /usr: 3.3 s, 1.0 s so; os.walk: 1.4 s).
        pending = [str(top)]
        while pending:
            pending += reversed(self._list(pending.pop()))

    def _list(self, folder: str) -> list[str]:
        """Take the files of ``folder``; returns its subfolders to walk."""
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in self.visited:
                return []
            self.visited.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            self.found.unreadable.append(folder)
            reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
            reason = f"could not list the folder ({reason}); its items are kept"
            self.found.errors.append((display_path(folder), reason))
            return []
        subfolders = []
        for entry in entries:
            name, path = entry.name, entry.path
            if name.startswith("."):
                continue
            try:
                if entry.is_symlink():
                    subfolders += self._link(path)
                elif entry.is_dir(follow_symlinks=False):
                    if self._named_well(path, "folder"):
                        subfolders.append(path)
                elif _supported(name) and self._named_well(path, "file"):
                    if entry.is_file(follow_symlinks=False):  # regular (known from the listing: no file is opened)
                        self._add(path)
                    else:
                        mode = entry.stat(follow_symlinks=False).st_mode
                        self._error(path, f"{_kind(mode)}, not a regular file: skipped")
            except OSError as exc:  # vanished meanwhile, or cannot be looked at
                self._error(display_path(path), _unreachable(Path(path), exc, "vanished while indexing"))
        return subfolders

    def _link(self, path: str) -> list[str]:
        """A symbolic link met in a folder: its target's real path when inside the indexed folders, else skipped
        (or, with ``follow_links``, taken under the link's path). Returns a folder to walk, if any."""
        supported = _supported(os.path.basename(path))
        shown = display_path(path)
        try:
            info = os.stat(path)
        except OSError as exc:
            if supported:
                self._error(shown, _unreachable(Path(path), exc, "vanished while indexing"))
            return []
        folder = stats.S_ISDIR(info.st_mode)
        if not folder and not supported:
            return []
        real = os.path.realpath(path)
        inside = any(_within(real, root) for root in self.roots)
        if not (inside or self.follow_links):
            target = display_path(os.readlink(path))
            self.found.notes.append((shown, f"skipped: a link to {target}, outside the indexed folders "
                                            "(index --follow-links to follow it)"))  # fmt: skip
            self.found.skipped += 1
            return []
        if not self._named_well(path, "link"):
            return []
        if folder:
            return [] if inside else [path]  # inside: walked as part of its folder already
        if not stats.S_ISREG(info.st_mode):
            self._error(shown, f"a link to {_kind(info.st_mode)}, not a regular file: skipped")
            return []
        self._add(real if inside else path)
        return []

    def _named_well(self, path: str, what: str) -> bool:
        """Whether ``path`` can be stored (valid UTF-8); if not, the reason names it, shown with escapes."""
        try:
            path.encode("utf-8")
            return True
        except UnicodeEncodeError:  # bytes that are not UTF-8, kept by Python as lone surrogates
            pass
        reason = f"the {what} name is not valid UTF-8 (shown with escapes); rename it to index it"
        self._error(display_path(path), reason, what)
        return False

    def _error(self, shown: str, reason: str, what: str = "file") -> None:
        self.found.errors.append((shown, reason))
        self.found.failed += what != "folder"

    def _add(self, path: str | Path) -> None:
        self.keys.setdefault(str(path))


def display_path(path: str | Path) -> str:
    """``path`` as text that can be stored and shown: bytes that are not UTF-8 as backslash escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def real_path(path: str | Path) -> str:
    """The key of a path in the store: absolute, ``~`` expanded, links and ``..`` resolved."""
    return os.path.realpath(os.path.expanduser(path))


def is_under(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or inside it, both compared as real paths."""
    return _within(real_path(path), real_path(folder))


def _within(path: str, folder: str) -> bool:
    """``is_under`` for paths already normalised (keys of the store): compared as written."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a regular file's bytes (anything else raises :class:`MediaError` without blocking: a FIFO is
    opened non-blocking and refused)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb", closefd=True) as handle:
        mode = os.fstat(fd).st_mode
        if not stats.S_ISREG(mode):
            raise MediaError(f"{_kind(mode)}, not a regular file: skipped")
        os.set_blocking(fd, True)
        digest = hashlib.sha256()
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Indexer:
    def __init__(
        self,
        store: Store,
        analyzer: Analyzer,
        fts_text: Callable[[str], str],
        video_progress: VideoProgress | None = None,
        follow_links: bool = False,
    ):
        self.store = store
        self.analyzer = analyzer
        self.fts_text = fts_text
        self.video_progress = video_progress
        self.follow_links = follow_links
        # Threads that hash and decode ahead of the models (0: one file at a time, all in the calling thread).
        self.decode_threads = analyzer.settings.threads
        self.faces = FaceHook(store, analyzer, fts_text)  # faces and people (polymodal.perceivers.faces)

    def index(self, paths: Iterable[Path], progress: Progress | None = None) -> IndexReport:
        started = time.perf_counter()
        found = scan([Path(p) for p in paths], self.follow_links)
        report = IndexReport(errors=list(found.errors), notes=list(found.notes))
        if found.skipped:
            report.outcomes[SKIPPED] += found.skipped
        if found.failed:
            report.outcomes[FAILED] += found.failed
        files = found.files
        log.info("indexing %d files (%d folders) into %s", len(files), len(found.folders), self.store.location)
        try:
            self.store.clean_orphans()
            self._record_scan_errors(found)
            self._run(files, report, progress)
            if progress:
                progress(len(files), len(files), "")
            self._forget_removed(found, report)
            self.faces.finish()
        except StoreUnavailable as exc:  # disk full, read-only store: what was written stays, the rest next time
            report.stopped = str(exc)
            report.errors.append((self.store.location, f"indexing stopped: {exc}"))
            log.error("indexing stopped: %s", exc)
        report.seconds = time.perf_counter() - started
        log.info("indexed %d files in %.1f s: %s; %d errors", len(files), report.seconds, dict(report.outcomes),
                 len(report.errors))  # fmt: skip
        return report

    def _record_scan_errors(self, found: Scan) -> None:
        """Keep the errors met under the folders (an unreadable subfolder, a pipe, a broken link) in the store, so
        that ``status`` shows them; errors about the paths given are the caller's to see, in the report."""
        inside = [(path, reason) for path, reason in found.errors
                  if any(_within(path, str(root)) and path != str(root) for root in found.folders)]  # fmt: skip
        self.store.record_errors(inside)

    def _forget_removed(self, found: Scan, report: IndexReport) -> None:
        """Remove the items of files gone from the folders walked (not those under a folder that could not be
        listed), and errors of paths that are fine now."""
        seen = {str(p) for p in found.files}
        kept = {path for path, _ in report.errors}
        for root in found.folders:
            for row in self.store.files_under(str(root)):
                if row.path in seen or any(_within(row.path, folder) for folder in found.unreadable):
                    continue
                if self.store.remove_file(row.path):
                    report.outcomes[REMOVED] += 1
            self.store.clear_errors_under(str(root), keep=kept)

    def _run(self, files: list[Path], report: IndexReport, progress: Progress | None) -> None:
        """Files in order: threads stat, hash and decode ahead (:meth:`_look_ahead`); this thread runs the models
        (images and short recordings in batches) and writes. ``decode_threads`` 0 does everything here, one file
        at a time."""
        threads = self.decode_threads
        batches: dict[type, list[_Ahead]] = {PreparedImage: [], PreparedAudio: []}
        ahead: deque[Future[_Ahead]] = deque()
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="polymodal-decode") as pool:
            try:
                for done, path in enumerate(files):
                    ahead.append(pool.submit(self._look_ahead, path) if threads else _done(self._look_ahead(path)))
                    while len(ahead) > (WINDOW if threads else 0) or (ahead and done == len(files) - 1):
                        item = ahead.popleft().result()
                        if progress:
                            progress(done - len(ahead), len(files), item.key)
                        self._take(item, batches, report)
                for batch in batches.values():
                    self._flush(batch, report)
            except BaseException:
                for future in ahead:  # the store cannot be written: no more decoding
                    future.cancel()
                raise

    def _look_ahead(self, path: Path) -> _Ahead:
        """Everything about a file that needs no model and no write (thread-safe): stat, the unchanged check,
        the hash, and for a new image its decoding."""
        key = str(path)
        try:
            stat = _regular_stat(path)
            limit = self.analyzer.settings.max_file_bytes
            if stat.st_size > limit:
                raise MediaError(f"file is {stat.st_size / 1e9:.1f} GB, over the {limit / 1e9:.1f} GB size limit")
            known = self.store.file(key)
            if known and known.size == stat.st_size and known.mtime_ns == stat.st_mtime_ns:
                return _Ahead(key, stat, known_sha=known.sha)
            item = _hashed(path, stat)
            if self.store.content_state(item.sha or "") is None:
                detected = detect(path)
                item.note = detected.note
                if detected.modality == "image":
                    item.prepared = self.analyzer.prepare_image(path, detected.format)
                elif detected.modality == "audio" and _short(path):
                    item.prepared = self.analyzer.prepare_audio(path, detected.format)
            return item
        except Exception as exc:  # reported in order, by _take
            return _Ahead(key, error=exc)

    def _take(self, item: _Ahead, batches: dict[type, list[_Ahead]], report: IndexReport) -> None:
        """Finish one file (a decoded image or short recording joins its batch; the batch runs when full)."""
        if item.prepared is not None and item.error is None:
            batch = batches[type(item.prepared)]
            if any(b.sha == item.sha for b in batch):  # the same content twice in one batch: the second links
                self._flush(batch, report)
            elif self.store.content_state(item.sha or "") is None:
                batch.append(item)
                if self._full(batch):
                    self._flush(batch, report)
                return
        report.outcomes[self._index_file(item, report)] += 1

    def _full(self, batch: list[_Ahead]) -> bool:
        if not self.decode_threads:
            return True  # one file at a time
        audio = [b.prepared for b in batch if isinstance(b.prepared, PreparedAudio)]
        if audio:
            return sum(a.seconds for a in audio) >= AUDIO_BATCH_SECONDS or len(batch) >= WINDOW
        return len(batch) >= IMAGE_BATCH

    def _flush(self, batch: list[_Ahead], report: IndexReport) -> None:
        if not batch:
            return
        try:
            analyses: list[Analysis | None] = list(self._finish([b.prepared for b in batch]))
        except Exception:  # one odd file must not fail its batch: each on its own, to find it
            analyses = [None] * len(batch)
        for item, analysis in zip(batch, analyses, strict=True):
            report.outcomes[self._index_file(item, report, analysis)] += 1
        batch.clear()

    def _finish(self, prepared: list) -> list[Analysis]:
        if isinstance(prepared[0], PreparedAudio):
            return self.analyzer.finish_audio(prepared)
        return self.analyzer.finish_images(prepared)

    def _index_file(
        self, item: _Ahead, report: IndexReport, analysis: Analysis | None = None, attempt: int = 1, fresh: bool = False
    ) -> str:
        """Write one file: unchanged (at most refreshed), linked to stored content, or analysed and saved.
        ``fresh``: analyse even when its content is stored (the stored analysis is of older models)."""
        key = item.key
        try:
            if item.error is not None:
                raise item.error
            if item.known_sha is not None:
                return self._refresh(key, item.known_sha, report, attempt)
            assert item.stat is not None and item.sha is not None
            if not fresh and self.store.content_state(item.sha) is not None:
                self.store.link_file(key, item.sha, item.stat.st_size, item.stat.st_mtime_ns)
                self._refresh(key, item.sha, report, attempt)
                return LINKED
            analysis = self._analyze(item, analysis)
            self.faces.perceive(key, analysis)
            if not _still_hashed(item):  # changed since it was hashed: what was analysed may not be that content
                return self._again(key, report, attempt)
            self.store.save(key, item.sha, item.stat.st_size, item.stat.st_mtime_ns, analysis, self.fts_text)
            report.per_modality[analysis.modality] += 1
            report.notes += [(key, note) for note in analysis.notes]
            return ANALYZED
        except StoreUnavailable:
            raise
        except (MediaError, OSError) as exc:
            return self._fail(key, _reason(exc), report)
        except Exception as exc:  # a model crashing on one odd file must not stop the run
            return self._fail(key, f"analysis failed: {type(exc).__name__}: {exc}", report)

    def _analyze(self, item: _Ahead, analysis: Analysis | None) -> Analysis:
        if item.prepared is None:
            return self.analyzer.analyze_file(Path(item.key), progress=self._progress_of(item.key))
        analysis = analysis or self._finish([item.prepared])[0]
        analysis.notes += [item.note] if item.note else []
        self.analyzer.embed(analysis)  # what analyze_file does after perceiving
        return analysis

    def _again(self, key: str, report: IndexReport, attempt: int, fresh: bool = False) -> str:
        """Index a file that changed while it was being indexed once more, from its hash on."""
        if attempt >= MAX_ATTEMPTS:
            raise MediaError("changed while indexing, again and again; it is indexed on the next run")
        path = Path(key)
        return self._index_file(_hashed(path, _regular_stat(path)), report, attempt=attempt + 1, fresh=fresh)

    def _refresh(self, key: str, sha: str, report: IndexReport, attempt: int = 1) -> str:
        """Bring a stored analysis up to date with the current models, as cheaply as possible."""
        state = self.store.content_state(sha)
        if state is None:
            return UNCHANGED
        modality, stored = state
        wanted = self.analyzer.perception_ids(modality)
        if any(stored.get(stage) not in (None, model) for stage, model in wanted.items()):
            return self._again(key, report, attempt - 1, fresh=True)  # hashed again: the bytes analysed are known
        faces = self.faces.refresh(key, sha, modality, stored)  # stored before faces, or by another face model
        if stored.get("text") != self.analyzer.embedding_id(modality):
            analysis = self.store.load_analysis(sha)
            assert analysis is not None
            self.analyzer.embed(analysis)
            self.store.replace_vectors(sha, analysis)
            return REEMBEDDED
        return FACES_UPDATED if faces else UNCHANGED

    def _progress_of(self, key: str) -> Callable[[float, float], None] | None:
        report = self.video_progress
        return None if report is None else lambda seconds, duration: report(key, seconds, duration)

    def _fail(self, key: str, reason: str, report: IndexReport) -> str:
        shown = display_path(key)
        log.info("could not index %s: %s", shown, reason)
        report.errors.append((shown, reason))
        self.store.record_error(shown, reason)
        return FAILED


@dataclass
class _Ahead:
    """What the decoding threads learned about one file before the models see it."""

    key: str
    stat: os.stat_result | None = None  # taken before hashing: what the stored size and mtime say
    known_sha: str | None = None  # path, size and mtime unchanged: at most a refresh
    sha: str | None = None
    hashed_at_ns: int = 0
    note: str | None = None  # what detection noticed (e.g. a PNG named .jpg)
    prepared: PreparedImage | PreparedAudio | None = None  # a new image or short recording, decoded
    error: Exception | None = None


def _hashed(path: Path, stat: os.stat_result) -> _Ahead:
    started = time.time_ns()
    return _Ahead(str(path), stat, sha=file_sha256(path), hashed_at_ns=started)


def _still_hashed(item: _Ahead) -> bool:
    """Whether the file still holds the bytes that were hashed, so that the analysis just made (which read it
    after the hash) is of that content: its stat is unchanged, and a recently modified file hashes the same."""
    assert item.stat is not None
    try:
        now = os.stat(item.key)
    except OSError:
        return False
    before = item.stat
    if _identity(now) != _identity(before):
        return False
    if item.hashed_at_ns - before.st_mtime_ns > RACY_NS:
        return True
    try:
        return file_sha256(Path(item.key)) == item.sha
    except (OSError, MediaError):
        return False


def _identity(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _regular_stat(path: Path) -> os.stat_result:
    """The stat of a regular file (following links), or a :class:`MediaError` saying what the path is."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not os.path.islink(path):
            raise  # "vanished while indexing"
        raise MediaError(_unreachable(path, exc, "vanished while indexing")) from exc
    if not stats.S_ISREG(info.st_mode):
        raise MediaError(f"{_kind(info.st_mode)}, not a regular file: skipped")
    return info


def _supported(name: str) -> bool:
    return os.path.splitext(name)[1][1:].lower() in SUPPORTED_EXTENSIONS


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stats.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stats.S_ISSOCK(mode):
        return "a socket"
    if stats.S_ISCHR(mode) or stats.S_ISBLK(mode):
        return "a device"
    if stats.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _unreachable(path: Path, exc: OSError, missing: str) -> str:
    """Why ``path`` cannot be looked at (``missing``: what to say when it is simply not there)."""
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return f"broken link to {display_path(os.readlink(path))}"
        return missing
    if exc.errno == errno.ELOOP:
        return "a loop of symbolic links"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


def _short(path: Path) -> bool:
    """A recording short enough to share a Whisper window (one whose length cannot be read is not)."""
    try:
        return audio_duration(path) <= PACKED_AUDIO_SECONDS
    except Exception:  # decoded later, one file at a time, where a damaged file gets its reason
        return False


def _done(item: _Ahead) -> Future[_Ahead]:
    future: Future[_Ahead] = Future()
    future.set_result(item)
    return future


def _reason(exc: Exception) -> str:
    if isinstance(exc, MediaError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file vanished while indexing"
    return f"could not read: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
