"""Index folders incrementally: scan -> decide -> analyze -> write, one atomic transaction per file.

A file is skipped when its path, size and mtime are unchanged; otherwise it is hashed, and content that
is already analyzed (a moved, copied or touched-but-identical file) is linked without re-analysis.
Files that disappeared from an indexed folder are removed. One bad file is recorded and never stops the run.
"""

from __future__ import annotations

import hashlib
import os
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
from polymodal.store.sqlite import SqliteStore

# Images are classified in batches of this many, decoded ahead by the indexer's threads (at most WINDOW files
# ahead of the one being written, which bounds memory); two thirds of a photo's CPU time is decoding.
IMAGE_BATCH = 8
WINDOW = 2 * IMAGE_BATCH
# Short recordings are decoded ahead too and finished together, so that their speech shares Whisper windows
# (a 3 s clip alone costs a whole 30 s window); a batch ends at this much audio or WINDOW clips.
PACKED_AUDIO_SECONDS = 15.0
AUDIO_BATCH_SECONDS = 90.0

# Outcomes of one file.
ANALYZED, REEMBEDDED, LINKED, UNCHANGED, FAILED, REMOVED = (
    "analyzed",
    "re-embedded",
    "linked",
    "unchanged",
    "failed",
    "removed",
)


@dataclass
class IndexReport:
    outcomes: Counter = field(default_factory=Counter)
    per_modality: Counter = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome != REMOVED)

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "seconds": round(self.seconds, 2),
            "outcomes": dict(self.outcomes),
            "per_modality": dict(self.per_modality),
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
            "notes": [{"path": p, "note": n} for p, n in self.notes],
        }


Progress = Callable[[int, int, str], None]  # (done, total, current path)
VideoProgress = Callable[[str, float, float], None]  # (path, seconds of the video read, its duration)


def scan(paths: Iterable[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Supported files under ``paths`` (sorted), and the paths that could not be listed, with reasons."""
    found: list[Path] = []
    problems: list[tuple[str, str]] = []
    for root in paths:
        root = root.expanduser().absolute()
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            for dirpath, dirnames, filenames in os.walk(
                root, onerror=lambda e: problems.append((e.filename, e.strerror))
            ):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [
                    Path(dirpath, name)
                    for name in sorted(filenames)
                    if not name.startswith(".")
                    and Path(name).suffix.lower().lstrip(".") in SUPPORTED_EXTENSIONS
                ]
        else:
            problems.append((str(root), "no such file or folder"))
    return found, problems


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Indexer:
    def __init__(
        self,
        store: SqliteStore,
        analyzer: Analyzer,
        fts_text: Callable[[str], str],
        video_progress: VideoProgress | None = None,
    ):
        self.store = store
        self.analyzer = analyzer
        self.fts_text = fts_text
        self.video_progress = video_progress
        # Threads that hash and decode ahead of the models (0: one file at a time, all in the calling thread).
        self.decode_threads = analyzer.settings.threads

    def index(self, paths: Iterable[Path], progress: Progress | None = None) -> IndexReport:
        started = time.perf_counter()
        roots = [Path(p).expanduser().absolute() for p in paths]
        files, problems = scan(roots)
        report = IndexReport()
        for path, reason in problems:
            report.errors.append((path, reason))
        self._run(files, report, progress)
        if progress:
            progress(len(files), len(files), "")
        seen = {str(p) for p in files}
        for root in roots:
            if root.is_dir():
                for row in self.store.files_under(str(root)):
                    if row.path not in seen and self.store.remove_file(row.path):
                        report.outcomes[REMOVED] += 1
                self.store.clear_errors_under(str(root), keep={p for p, _ in report.errors})
        report.seconds = time.perf_counter() - started
        return report

    def _run(self, files: list[Path], report: IndexReport, progress: Progress | None) -> None:
        """Files in order: threads stat, hash and decode ahead (:meth:`_look_ahead`); this thread runs the models
        (images and short recordings in batches) and writes. ``decode_threads`` 0 does everything here, one file
        at a time."""
        threads = self.decode_threads
        batches: dict[type, list[_Ahead]] = {PreparedImage: [], PreparedAudio: []}
        ahead: deque[Future[_Ahead]] = deque()
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="polymodal-decode") as pool:
            for done, path in enumerate(files):
                ahead.append(pool.submit(self._look_ahead, path) if threads else _done(self._look_ahead(path)))
                while len(ahead) > (WINDOW if threads else 0) or (ahead and done == len(files) - 1):
                    item = ahead.popleft().result()
                    if progress:
                        progress(done - len(ahead), len(files), item.key)
                    self._take(item, batches, report)
            for batch in batches.values():
                self._flush(batch, report)

    def _look_ahead(self, path: Path) -> _Ahead:
        """Everything about a file that needs no model and no write (thread-safe): stat, the unchanged check,
        the hash, and for a new image its decoding."""
        key = str(path)
        try:
            stat = path.stat()
            if stat.st_size > self.analyzer.settings.max_file_bytes:
                raise MediaError(f"file is {stat.st_size / 1e9:.1f} GB, over the size limit")
            known = self.store.file(key)
            if known and known.size == stat.st_size and known.mtime_ns == stat.st_mtime_ns:
                return _Ahead(key, stat, known_sha=known.sha)
            item = _Ahead(key, stat, sha=file_sha256(path))
            if self.store.content_state(item.sha) is None:
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

    def _index_file(self, item: _Ahead, report: IndexReport, analysis: Analysis | None = None) -> str:
        key, stat, sha = item.key, item.stat, item.sha
        try:
            if item.error is not None:
                raise item.error
            assert stat is not None
            if item.known_sha is not None:
                return self._refresh(key, item.known_sha, report)
            assert sha is not None
            if self.store.content_state(sha) is not None:
                self.store.link_file(key, sha, stat.st_size, stat.st_mtime_ns)
                self._refresh(key, sha, report)
                return LINKED
            if item.prepared is not None:
                analysis = analysis or self._finish([item.prepared])[0]
                analysis.notes += [item.note] if item.note else []
                self.analyzer.embed(analysis)  # what analyze_file does after perceiving
            else:
                analysis = self.analyzer.analyze_file(Path(key), progress=self._progress_of(key))
            self.store.save(key, sha, stat.st_size, stat.st_mtime_ns, analysis, self.fts_text)
            report.per_modality[analysis.modality] += 1
            report.notes += [(key, note) for note in analysis.notes]
            return ANALYZED
        except (MediaError, OSError) as exc:
            return self._fail(key, _reason(exc), report)
        except Exception as exc:  # a model crashing on one odd file must not stop the run
            return self._fail(key, f"analysis failed: {type(exc).__name__}: {exc}", report)

    def _refresh(self, key: str, sha: str, report: IndexReport) -> str:
        """Bring a stored analysis up to date with the current models, as cheaply as possible."""
        state = self.store.content_state(sha)
        if state is None:
            return UNCHANGED
        modality, stored = state
        wanted = self.analyzer.perception_ids(modality)
        if any(stored.get(stage) not in (None, model) for stage, model in wanted.items()):
            fresh = self.analyzer.analyze_file(Path(key))
            stat = Path(key).stat()
            self.store.save(key, sha, stat.st_size, stat.st_mtime_ns, fresh, self.fts_text)
            report.per_modality[fresh.modality] += 1
            return ANALYZED
        if stored.get("text") != self.analyzer.embedding_id(modality):
            analysis = self.store.load_analysis(sha)
            assert analysis is not None
            self.analyzer.embed(analysis)
            self.store.replace_vectors(sha, analysis)
            return REEMBEDDED
        return UNCHANGED

    def _progress_of(self, key: str) -> Callable[[float, float], None] | None:
        report = self.video_progress
        return None if report is None else lambda seconds, duration: report(key, seconds, duration)

    def _fail(self, key: str, reason: str, report: IndexReport) -> str:
        report.errors.append((key, reason))
        self.store.record_error(key, reason)
        return FAILED


@dataclass
class _Ahead:
    """What the decoding threads learned about one file before the models see it."""

    key: str
    stat: os.stat_result | None = None
    known_sha: str | None = None  # path, size and mtime unchanged: at most a refresh
    sha: str | None = None
    note: str | None = None  # what detection noticed (e.g. a PNG named .jpg)
    prepared: PreparedImage | PreparedAudio | None = None  # a new image or short recording, decoded
    error: Exception | None = None


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
