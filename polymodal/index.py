"""Index folders incrementally: scan -> decide -> analyze -> write, one atomic transaction per file.

A file is skipped when its path, size and mtime are unchanged; otherwise it is hashed, and content that
is already analyzed (a moved, copied or touched-but-identical file) is linked without re-analysis.
Files that disappeared from an indexed folder are removed. One bad file is recorded and never stops the run.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from polymodal.analysis import Analyzer
from polymodal.media.detect import SUPPORTED_EXTENSIONS
from polymodal.media.errors import MediaError
from polymodal.store.sqlite import SqliteStore

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

    def index(self, paths: Iterable[Path], progress: Progress | None = None) -> IndexReport:
        started = time.perf_counter()
        roots = [Path(p).expanduser().absolute() for p in paths]
        files, problems = scan(roots)
        report = IndexReport()
        for path, reason in problems:
            report.errors.append((path, reason))
        for done, path in enumerate(files):
            if progress:
                progress(done, len(files), str(path))
            outcome = self._index_file(path, report)
            report.outcomes[outcome] += 1
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

    def _index_file(self, path: Path, report: IndexReport) -> str:
        key = str(path)
        try:
            stat = path.stat()
            if stat.st_size > self.analyzer.settings.max_file_bytes:
                raise MediaError(f"file is {stat.st_size / 1e9:.1f} GB, over the size limit")
            known = self.store.file(key)
            if known and known.size == stat.st_size and known.mtime_ns == stat.st_mtime_ns:
                return self._refresh(key, known.sha, report)
            sha = file_sha256(path)
            if self.store.content_state(sha) is not None:
                self.store.link_file(key, sha, stat.st_size, stat.st_mtime_ns)
                self._refresh(key, sha, report)
                return LINKED
            analysis = self.analyzer.analyze_file(path, progress=self._progress_of(key))
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


def _reason(exc: Exception) -> str:
    if isinstance(exc, MediaError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file vanished while indexing"
    return f"could not read: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
