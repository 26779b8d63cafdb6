"""Indexing on a Ray cluster: the driver decides, actors analyse, partitions are retried.

The driver scans, stats and hashes every file and makes the incremental decision before anything is dispatched:
unchanged files (path, size, mtime) are at most refreshed, content already stored (moved, copied) is linked, both
on the driver. Only new content goes to the cluster, in partitions of a few files. Each actor builds one
:class:`~polymodal.analysis.Analyzer` (its models load once, on first use) and runs the local indexer's own
worker code (:meth:`polymodal.index.Indexer._run`: read -> perceive -> embed, images and short recordings batched)
over a partition:

- with PostgreSQL the actor writes to the store itself, one transaction per file, as a local run would;
- with SQLite (one writer: the driver) the actor's writes are recorded and sent back with the partition's result,
  and the driver writes them.

An actor whose process dies (killed, out of memory) is restarted by Ray and its partition is run again
(``max_restarts`` / ``max_task_retries``). A partition's result is applied only once it is complete, and a write
of a file replaces what an earlier attempt wrote, so the final store is that of an uninterrupted run. When an
actor dies for good (its restarts spent: a file that kills its process every time), it is replaced, and each file
of its partitions runs again alone, on an actor with nothing else queued: a file that dies alone is the one that
kills its process, and only it is reported, with its name and the reason; every other file is indexed once.

Faces are perceived where the rest of the analysis is made (on the actors); the people are brought up to date on
the driver at the end of the run, as the local engine does.

Every node must see the files under the same paths (one machine, or a shared file system) and have polymodal and
its models installed.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.analysis import Analysis, Analyzer
from polymodal.index import (
    FAILED,
    Indexer,
    IndexReport,
    Progress,
    _Ahead,
    _hashed,
    _reason,
    _regular_stat,
    display_path,
)
from polymodal.media.errors import MediaError
from polymodal.store.base import Store, StoreUnavailable

PARTITION_FILES = 4  # files per partition: the unit of dispatch and of retry
PARTITION_BYTES = 64 * 1024**2  # a partition of big files holds fewer
MAX_RETRIES = 3  # restarts of a dead actor, and re-runs of its partition
CHUNK_FILES = 5_000  # files decided at a time on the driver


@dataclass
class Write:
    """One write an actor made to a recorded store, to be made again by the driver."""

    op: str  # "save" | "link" | "error"
    key: str
    sha: str = ""
    size: int = 0
    mtime_ns: int = 0
    analysis: Analysis | None = None
    reason: str = ""


@dataclass
class PartitionResult:
    outcomes: Counter = field(default_factory=Counter)
    per_modality: Counter = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)  # for the driver to make (SQLite); empty when written
    pid: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the actor's process while it ran the partition (all its threads)
    faces_changed: bool = False  # faces were stored: the driver updates the people at the end of the run


@dataclass
class _Task:
    """A partition sent to the actor in slot ``slot`` of the run's actors; ``alone``: nothing else was queued on
    that actor (a file of a partition whose actor died, run again on its own)."""

    slot: int
    actor: Any
    keys: list[str]
    alone: bool


class RecordingStore:
    """What the local indexer needs of a store, on an actor that may not write the real one (SQLite): every file
    of the partition is new (the driver decided), and writes are recorded instead of made."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self._saved: dict[str, tuple[str, dict[str, str]]] = {}
        self.location = "the Ray driver's store"

    def file(self, path: str) -> None:
        return None

    def get_meta(self, key: str) -> str | None:
        return None

    def content_state(self, sha: str) -> tuple[str, dict[str, str]] | None:
        return self._saved.get(sha)

    def save(self, path: str, sha: str, size: int, mtime_ns: int, analysis: Analysis, fts_text: Any) -> None:
        self.writes.append(Write("save", path, sha, size, mtime_ns, analysis))
        self._saved[sha] = (analysis.modality, dict(analysis.models))

    def link_file(self, path: str, sha: str, size: int, mtime_ns: int) -> None:
        self.writes.append(Write("link", path, sha, size, mtime_ns))

    def record_error(self, path: str, reason: str) -> None:
        self.writes.append(Write("error", path, reason=reason))

    def record_errors(self, errors: list[tuple[str, str]]) -> None:
        for path, reason in errors:
            self.record_error(path, reason)


class IndexWorker:
    """A Ray actor: one analyzer (models loaded once per process) that indexes partitions of files."""

    def __init__(self, settings: Any, aligner: Any, store_url: str | None):
        from polymodal.collection import fts_text

        self.analyzer = Analyzer(settings, aligner)
        self.fts_text = fts_text
        self.store: Store | None = None
        if store_url is not None:  # a server store: written from here
            from polymodal.store.base import open_store

            self.store = open_store(store_url, create=False, cache=settings.cache)

    def pid(self) -> int:
        return os.getpid()

    def index(self, keys: list[str], progress: Any = None, faces: tuple[bool, bool] | None = None) -> PartitionResult:
        """Index the files ``keys``; ``faces``: (enabled, off) of the driver's face hook, for the recorded store
        (which cannot tell whether the real one keeps people)."""
        started, cpu = time.perf_counter(), time.process_time()
        recorder = RecordingStore() if self.store is None else None
        indexer = Indexer(recorder or self.store, self.analyzer, self.fts_text)  # type: ignore[arg-type]
        hook = getattr(indexer, "faces", None)
        if recorder is not None and hook is not None and faces is not None:
            hook.enabled, hook.off = faces
        report = IndexReport()

        def tell(done: int, total: int, current: str) -> None:
            if progress is not None and current:
                progress.put_nowait(current)

        indexer._run([Path(key) for key in keys], report, tell)
        return PartitionResult(
            report.outcomes, report.per_modality, report.errors, report.notes,
            recorder.writes if recorder else [], os.getpid(), time.perf_counter() - started,
            time.process_time() - cpu, bool(hook is not None and hook.changed),
        )  # fmt: skip


class RayIndexer(Indexer):
    """The local indexer with :meth:`_run` spread over Ray actors (see the module's notes)."""

    def __init__(
        self,
        store: Store,
        analyzer: Analyzer,
        fts_text: Any,
        video_progress: Any = None,
        follow_links: bool = False,
        address: str | None = None,
        workers: int | None = None,
    ):
        super().__init__(store, analyzer, fts_text, video_progress, follow_links)
        self.address = address
        self.workers = workers
        self.partition_pids: list[int] = []  # the process of each partition's result (for tests and benchmarks)
        self.actor_cpu_seconds = 0.0  # CPU time the actors spent on partitions (for benchmarks)
        self._counts = [0, 0]  # files done, files in all (of the run in progress)
        self._actors: list[Any] = []  # started on the first new content of a run, stopped at its end

    # --- the driver's part ------------------------------------------------------------------------------
    def _run(self, files: list[Path], report: IndexReport, progress: Progress | None) -> None:
        """Files a chunk at a time (bounded memory on the driver for any archive): decide, send the new content to
        the actors (started once, on the first new content), link the rest."""
        self._counts = [0, len(files)]
        shas: set[str] = set()  # new content already sent
        try:
            with ThreadPoolExecutor(max(1, self.decode_threads), thread_name_prefix="polymodal-decide") as pool:
                for start in range(0, len(files), CHUNK_FILES):
                    # stat and hash in threads: hashing reads every new file
                    decided = list(pool.map(self._decide, files[start : start + CHUNK_FILES]))
                    self._run_chunk(decided, shas, report, progress)
        finally:
            self._stop_actors()

    def _run_chunk(self, decided: list[_Ahead], shas: set[str], report: IndexReport, progress: Progress | None) -> None:
        stored: list[_Ahead] = []  # content already in the store: linked here
        fresh: list[_Ahead] = []  # one file per new content: analysed on the cluster
        duplicates: list[_Ahead] = []  # more files of a new content: linked once it is written
        for item in decided:
            if item.sha is None:  # unchanged (at most refreshed), or failed: here, at once
                self._finish_here(item, report, progress)
            elif item.sha in shas:
                duplicates.append(item)
            elif self.store.content_state(item.sha) is not None:
                stored.append(item)
            else:
                shas.add(item.sha)
                fresh.append(item)
        if fresh:
            self._on_cluster(fresh, report, progress)
        for item in stored + duplicates:
            self._finish_here(item, report, progress)

    def _finish_here(self, item: _Ahead, report: IndexReport, progress: Progress | None) -> None:
        report.outcomes[self._index_file(item, report)] += 1
        self._counts[0] += 1
        if progress:
            progress(self._counts[0], self._counts[1], item.key)

    def _decide(self, path: Path) -> _Ahead:
        """The incremental decision of one file, without models: unchanged (size, mtime), or its hash."""
        key = str(path)
        try:
            stat = _regular_stat(path)
            limit = self.analyzer.settings.max_file_bytes
            if stat.st_size > limit:
                raise MediaError(f"file is {stat.st_size / 1e9:.1f} GB, over the {limit / 1e9:.1f} GB size limit")
            known = self.store.file(key)
            if known and known.size == stat.st_size and known.mtime_ns == stat.st_mtime_ns:
                return _Ahead(key, stat, known_sha=known.sha)
            return _hashed(path, stat)
        except Exception as exc:
            return _Ahead(key, error=exc)

    def _on_cluster(self, fresh: list[_Ahead], report: IndexReport, progress: Progress | None) -> None:
        """Analyse (and, with a server store, write) new content on Ray actors."""
        import ray

        work = partitions(fresh)
        if not self._actors:
            self._start_ray()
            count = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            self._actors = [self._spawn() for _ in range(min(count, len(work)))]
        self._counts[0] = self._run_partitions(work, report, progress, *self._counts)

    def _spawn(self) -> Any:
        """One actor: restarted by Ray when its process dies, its partition run again (MAX_RETRIES times)."""
        import ray

        options = {"num_cpus": 1, "max_restarts": MAX_RETRIES, "max_task_retries": MAX_RETRIES}
        direct = getattr(self.store, "url", None)  # a server store: the actors write to it themselves
        return ray.remote(**options)(IndexWorker).remote(self.analyzer.settings, self.analyzer.aligner, direct)

    def _stop_actors(self) -> None:
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
            self._actors = []

    def _start_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=self.address, log_to_driver=False, include_dashboard=False, configure_logging=False)

    def _run_partitions(
        self, work: list[list[str]], report: IndexReport, progress: Progress | None, done: int, total: int
    ) -> int:
        """Keep every actor busy with one partition (and one queued), applying results as they come. The files of a
        partition whose actor died for good run again one at a time, each alone on its actor."""
        import ray
        from ray.util.queue import Empty, Queue

        queue = Queue(actor_options={"num_cpus": 0})
        hook = getattr(self, "faces", None)  # the driver's face hook (polymodal.perceivers.faces)
        faces = (hook.enabled, hook.off) if hook is not None else None
        pending: dict[Any, _Task] = {}
        waiting = list(reversed(work))  # partitions, the next one last
        suspects: list[str] = []  # files of partitions whose actor died for good, the next one last

        def submit(slot: int, keys: list[str], alone: bool) -> None:
            actor = self._actors[slot]
            pending[actor.index.remote(keys, queue, faces)] = _Task(slot, actor, keys, alone)

        def fill() -> None:
            for slot, actor in enumerate(self._actors):
                queued = [task for task in pending.values() if task.actor is actor]
                if suspects:  # an idle actor takes a suspect, and nothing more while it runs one
                    if not queued:
                        submit(slot, [suspects.pop()], alone=True)
                elif not any(task.alone for task in queued):
                    for _ in range(min(2 - len(queued), len(waiting))):
                        submit(slot, waiting.pop(), alone=False)

        reported: set[str] = set()
        fill()
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                while True:  # files finished inside partitions still running
                    try:
                        key = queue.get_nowait()
                    except Empty:
                        break
                    if key not in reported and progress:
                        reported.add(key)
                        progress(done + len(reported) - 1, total, key)
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:  # its process died, restarts and retries spent
                        self._replace(task)
                        if task.alone:  # it died on this file alone: this file kills its process
                            self._lost(task.keys[0], exc, report)
                            reported.add(task.keys[0])
                        else:  # which file killed it is not known: each alone now
                            suspects.extend(reversed(task.keys))
                    else:
                        self._apply(result, report)
                        reported.update(task.keys)
                fill()
        finally:
            ray.kill(queue.actor)
        return done + len(reported)

    def _replace(self, task: _Task) -> None:
        """A new actor in the slot of one that died for good (once: its other partitions fail as well)."""
        import ray

        if self._actors[task.slot] is task.actor:
            ray.kill(task.actor, no_restart=True)
            self._actors[task.slot] = self._spawn()

    def _lost(self, key: str, exc: Exception, report: IndexReport) -> None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = (f"the Ray worker's process died indexing this file alone, on every try ({MAX_RETRIES + 1} at "
                  f"most): {first[:200]}")  # fmt: skip
        shown = display_path(key)
        report.errors.append((shown, reason))
        report.outcomes[FAILED] += 1
        self.store.record_error(shown, reason)

    def _apply(self, result: PartitionResult, report: IndexReport) -> None:
        """Merge a partition's result into the report, and make its writes (SQLite) here, one file at a time."""
        self.partition_pids.append(result.pid)
        self.actor_cpu_seconds += result.cpu_seconds
        if result.faces_changed:
            self.faces.changed = True
        for write in result.writes:
            try:
                if write.op == "save":
                    assert write.analysis is not None
                    self.store.save(write.key, write.sha, write.size, write.mtime_ns, write.analysis, self.fts_text)
                elif write.op == "link":
                    self.store.link_file(write.key, write.sha, write.size, write.mtime_ns)
                else:
                    self.store.record_error(write.key, write.reason)
            except StoreUnavailable:
                raise
            except Exception as exc:
                shown = display_path(write.key)
                report.errors.append((shown, _reason(exc)))
                report.outcomes[FAILED] += 1
        report.outcomes.update(result.outcomes)
        report.per_modality.update(result.per_modality)
        report.errors += result.errors
        report.notes += result.notes


def partitions(items: list[_Ahead]) -> list[list[str]]:
    """Files in order, cut into partitions of at most PARTITION_FILES files or PARTITION_BYTES bytes."""
    out: list[list[str]] = []
    current: list[str] = []
    size = 0
    for item in items:
        bytes_ = item.stat.st_size if item.stat is not None else 0
        if current and (len(current) >= PARTITION_FILES or size + bytes_ > PARTITION_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(item.key)
        size += bytes_
    if current:
        out.append(current)
    return out
