"""Index jobs: run in the background on their own bounded executor, with live progress and cancellation.

Indexing gets one worker thread of its own (at a lower CPU priority where the OS allows it per thread), so
searches, which run on a separate pool, always find a free worker while a large upload is being indexed.
Cancelling stops before the next file; every file already written stays (each is one transaction).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
KEEP_FINISHED = 100
INDEX_NICENESS = 10


class JobsFull(RuntimeError):
    """Too many index jobs are queued or running."""


class JobNotFound(KeyError):
    def __str__(self) -> str:
        return f"no index job {self.args[0]!r}"


class _Cancelled(Exception):
    pass


@dataclass
class Job:
    id: str
    root: Path
    label: str
    files: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    state: str = QUEUED
    done: int = 0
    total: int = 0
    current: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "current": self.current,
            "files": self.files,
            "rejected": self.rejected,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "seconds": round((self.finished or time.time()) - (self.started or time.time()), 2),
            "report": self.report,
            "error": self.error,
        }


class JobManager:
    """``index(root, progress)`` does the work; ``display(path)`` turns a path into what callers may see."""

    def __init__(self, index: Callable[..., Any], display: Callable[[str], str], max_jobs: int = 16):
        self._index = index
        self._display = display
        self.max_jobs = max_jobs
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="polymodal-index", initializer=_lower_priority)

    def start(self, root: Path, label: str, files: int = 0, rejected: list[dict[str, str]] | None = None) -> Job:
        with self._lock:
            if sum(j.state not in FINISHED for j in self._jobs.values()) >= self.max_jobs:
                raise JobsFull(f"{self.max_jobs} index jobs are already waiting; try again when one finishes")
            job = Job(secrets.token_hex(6), root, label, files, rejected or [])
            self._jobs[job.id] = job
            self._forget_old()
        self._executor.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.created)

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel.set()
        if job.state == QUEUED:
            job.state, job.finished = CANCELLED, time.time()
        return job

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((QUEUED, RUNNING, DONE, FAILED, CANCELLED), 0)
        for job in list(self._jobs.values()):
            counts[job.state] += 1
        return counts

    def shutdown(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            job.state = CANCELLED
            return
        job.state, job.started = RUNNING, time.time()

        def progress(done: int, total: int, path: str) -> None:
            if job.cancel.is_set():
                raise _Cancelled
            job.done, job.total, job.current = done, total, self._display(path) if path else ""

        try:
            report = self._index(job.root, progress=progress).to_dict()
            for entry in report["errors"] + report["notes"]:
                entry["path"] = self._display(entry["path"])
            job.report, job.state = report, DONE
        except _Cancelled:
            job.state = CANCELLED
        except Exception as exc:  # recorded on the job, shown in words
            job.state, job.error = FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            job.finished, job.current = time.time(), ""

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for job in sorted(finished, key=lambda j: j.created)[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]


def _lower_priority() -> None:
    """Lower this worker thread's CPU priority (Linux gives each thread its own nice value)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INDEX_NICENESS)
