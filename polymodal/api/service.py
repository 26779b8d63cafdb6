"""The one service object per process: the shared Collection, the worker pools, keys, limits, jobs, metrics.

Models are loaded once (the Collection's analyzer is shared by every request). CPU-heavy work never runs
on the event loop. Work is split by cost, so that cheap requests never queue behind expensive ones: text
searches (milliseconds) on one pool; image queries and quick tasks (~0.1 s) on another; recorded queries
(speech recognition takes seconds and every core) on a third; long tasks (transcription, the LLM, which is
not re-entrant) on a pool of one; indexing on its own single worker (:mod:`polymodal.api.jobs`). Each pool
has a queue bound: past it the service answers 503 instead of piling up work.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from polymodal.api.boundary import Trust
from polymodal.api.config import ServeConfig
from polymodal.api.errors import ApiError
from polymodal.api.jobs import JobManager
from polymodal.api.metrics import Metrics, rss_bytes
from polymodal.api.security import KeyStore, RateLimiter
from polymodal.api.uploads import Uploads
from polymodal.collection import Collection

T = TypeVar("T")
WARM_FAMILIES = ("text", "image", "sound", "vad", "speech")
FAILURES_PER_MINUTE, FAILURES_BURST = 60, 20
FILE_RATE_FACTOR = 10  # reads of items' files (thumbnails, media) may come this many times faster than requests


class Pool:
    """A thread pool with a bound on work waiting or running in it."""

    def __init__(self, name: str, workers: int, max_pending: int):
        self.name = name
        self.workers = workers
        self.max_pending = max_pending
        self.pending = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"polymodal-{name}")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            if self.pending >= self.max_pending:
                raise ApiError(503, f"the service is busy ({self.name}); try again in a moment", {"Retry-After": "2"})
            self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        finally:
            with self._lock:
                self.pending -= 1

    def submit(self, fn: Callable[..., Any]) -> None:
        self._executor.submit(fn)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Service:
    def __init__(self, collection: Collection, config: ServeConfig):
        self.collection = collection
        self.config = config
        self.store_dir = Path(collection.store.directory).absolute()  # a server store's local files: a cache dir
        self.keys = KeyStore(self.store_dir)
        self.trust = Trust.from_config(config)
        self.limiter = RateLimiter(config.rate_per_minute, config.rate_burst)
        # A page of results asks for a thumbnail or a recording per card (an audio player for several byte
        # ranges): reading an item's file spends tokens of its own, so browsing never locks a caller out of
        # searching, and a flood of file reads is still slowed down.
        self.file_limiter = RateLimiter(config.rate_per_minute * FILE_RATE_FACTOR, config.rate_burst * FILE_RATE_FACTOR)
        # Requests without a valid key, per address: fewer than a key may make (0 still turns limits off).
        self.failures = RateLimiter(
            min(config.rate_per_minute, FAILURES_PER_MINUTE), min(config.rate_burst, FAILURES_BURST)
        )
        self.metrics = Metrics()
        self.uploads = Uploads(self.store_dir)
        self.search_pool = Pool("search", config.search_workers, config.max_pending)
        self.media_pool = Pool("media", config.media_workers, config.max_pending)
        self.audio_pool = Pool("audio", config.audio_workers, config.max_pending)
        self.task_pool = Pool("tasks", 1, max(4, config.max_pending // 4))
        self.jobs = JobManager(collection.index, self.display_path, config.max_jobs)
        self.started = time.time()
        self.warm = {"state": "idle", "seconds": None}
        self._register_gauges()

    # --- paths as callers see them ------------------------------------------------------------------
    def display_path(self, path: str) -> str:
        """A path shown to callers: inside uploads, relative to the upload; elsewhere its last two parts."""
        full = Path(path)
        try:
            relative = full.relative_to(self.uploads.root)
            return str(Path("uploads", *relative.parts[1:])) if len(relative.parts) > 1 else full.name
        except ValueError:
            return str(Path(*full.parts[-2:])) if len(full.parts) >= 2 else full.name

    def is_upload(self, path: str) -> bool:
        """Whether the file really is under ``uploads/`` ("uploads/../x" and links out of it are not)."""
        return self.upload_file(path) is not None

    def upload_file(self, path: str) -> Path | None:
        """The real path of an uploaded file, or None when ``path`` does not lead into ``uploads/``."""
        real = Path(os.path.realpath(path))
        return real if real.is_relative_to(Path(os.path.realpath(self.uploads.root))) else None

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.uploads.clear_incoming()
        if self.config.warm:
            self.warm["state"] = "warming"
            self.media_pool.submit(self._warm_models)

    def stop(self) -> None:
        self.jobs.shutdown()
        self.search_pool.shutdown()
        self.media_pool.shutdown()
        self.audio_pool.shutdown()
        self.task_pool.shutdown()
        self.uploads.clear_incoming()

    def _warm_models(self) -> None:
        started = time.perf_counter()
        analyzer = self.collection.analyzer
        try:
            analyzer.model("text").encode(["warm up"])
            for family in WARM_FAMILIES[1:]:
                analyzer.model(family).runtime  # noqa: B018 (loading is the point)
            self.warm["state"] = "ready"
        except Exception as exc:  # a model that cannot load is reported by the request that needs it
            self.warm["state"] = f"failed: {type(exc).__name__}"
        self.warm["seconds"] = round(time.perf_counter() - started, 2)

    def _register_gauges(self) -> None:
        gauge = self.metrics.gauge
        gauge("process_resident_memory_bytes", rss_bytes)
        gauge("uptime_seconds", lambda: time.time() - self.started)
        gauge("search_pool_pending", lambda: self.search_pool.pending)
        gauge("media_pool_pending", lambda: self.media_pool.pending)
        gauge("audio_pool_pending", lambda: self.audio_pool.pending)
        gauge("task_pool_pending", lambda: self.task_pool.pending)
        gauge("index_jobs_running", lambda: self.jobs.counts()["running"])
        gauge("index_jobs_queued", lambda: self.jobs.counts()["queued"])
        gauge("items", lambda: self.collection.items(limit=0)[0])
