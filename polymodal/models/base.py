"""What every model adapter shares: lazy loading under a lock, and one instance per process.

An adapter subclasses :class:`LazyModel`, implements ``load()`` (return the loaded runtime object) and
its own small public methods that call ``self.runtime``. Adapters are registered by family and name
and obtained with :func:`get_model`, which caches one instance per (family, name, settings) per process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from polymodal.config import Settings

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """A model could not be loaded or run (missing package, corrupt file, wrong checksum)."""


class LazyModel:
    family: ClassVar[str] = ""
    name: ClassVar[str] = ""
    # Bumped when the adapter's output changes, so stored results made by an older version are redone.
    version: ClassVar[str] = "1"

    def __init__(self, settings: Settings):
        self.settings = settings
        self._runtime: Any = None
        self._lock = threading.Lock()
        self.last_used = 0.0  # time.monotonic() of the last use, for unloading idle models

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def loaded(self) -> bool:
        return self._runtime is not None

    @property
    def runtime(self) -> Any:
        runtime = self._runtime
        if runtime is None:
            with self._lock:
                if self._runtime is None:
                    started = time.perf_counter()
                    self._runtime = self.load()
                    log.info("loaded model %s/%s in %.2f s", self.family, self.model_id, time.perf_counter() - started)
                    _watch(self)
                runtime = self._runtime
        self.last_used = time.monotonic()
        return runtime

    def load(self) -> Any:
        raise NotImplementedError

    def unload(self) -> None:
        """Drop the loaded runtime (a call already running keeps its reference); the next use loads it again."""
        with self._lock:
            if self._runtime is not None:
                log.info("unloaded model %s/%s", self.family, self.model_id)
            self._runtime = None

    def override_path(self) -> str | None:
        """A user-configured file or directory replacing the bundled weights, if any."""
        return self.settings.model_paths.get(self.name)


M = TypeVar("M", bound=LazyModel)
_REGISTRY: dict[tuple[str, str], Callable[[Settings], LazyModel]] = {}
_INSTANCES: dict[tuple[str, str, str], LazyModel] = {}
_INSTANCES_LOCK = threading.Lock()


def register(cls: type[M]) -> type[M]:
    """Class decorator: make an adapter available to :func:`get_model` under its family and name."""
    _REGISTRY[(cls.family, cls.name)] = cls
    return cls


def available(family: str) -> list[str]:
    _import_adapters()
    return sorted(name for fam, name in _REGISTRY if fam == family)


def get_model(family: str, name: str, settings: Settings) -> Any:
    _import_adapters()
    # Only what changes the model's files or runtime: collections with different stores share one instance.
    key = (family, name, repr((settings.cache, settings.threads, settings.model_paths.get(name))))
    with _INSTANCES_LOCK:
        if key not in _INSTANCES:
            factory = _REGISTRY.get((family, name))
            if factory is None:
                raise ModelError(
                    f"unknown {family} model {name!r}; available: {', '.join(available(family)) or 'none'}"
                )
            _INSTANCES[key] = factory(settings)
        return _INSTANCES[key]


def loaded_models() -> list[str]:
    return sorted(m.model_id for m in _INSTANCES.values() if m.loaded)


def _import_adapters() -> None:
    # Importing the adapter modules only registers classes; none of them loads weights at import.
    from polymodal.models import image, llm, ocr, sound, speech, text, vad  # noqa: F401


# --- unloading idle models ----------------------------------------------------------------------------------
_WATCHED: dict[int, LazyModel] = {}
_REAPER: threading.Thread | None = None
_WAKE = threading.Event()  # a newly watched model may allow less idle time than the reaper's current wait


def _watch(model: LazyModel) -> None:
    """Unload ``model`` once it is idle for ``settings.idle_unload_seconds`` (a daemon thread, started on first use)."""
    global _REAPER
    if model.settings.idle_unload_seconds <= 0:
        return
    with _INSTANCES_LOCK:
        _WATCHED[id(model)] = model
        if _REAPER is None or not _REAPER.is_alive():
            _REAPER = threading.Thread(target=_reap_forever, name="polymodal-model-reaper", daemon=True)
            _REAPER.start()
    _WAKE.set()


def _reap_forever() -> None:
    while True:
        with _INSTANCES_LOCK:
            models = list(_WATCHED.values())
        shortest = min((m.settings.idle_unload_seconds for m in models), default=60.0)
        _WAKE.wait(max(0.25, min(30.0, shortest / 4)))
        _WAKE.clear()
        unload_idle()


def unload_idle(now: float | None = None) -> list[str]:
    """Unload every watched model idle for longer than its settings allow; returns their ids."""
    now = time.monotonic() if now is None else now
    with _INSTANCES_LOCK:
        idle = [m for m in _WATCHED.values() if m.loaded and now - m.last_used > m.settings.idle_unload_seconds]
    for model in idle:
        model.unload()
    if idle:
        _release_memory()
    return [m.model_id for m in idle]


def _release_memory() -> None:
    """Collect the dropped sessions and hand freed heap pages back to the system."""
    import gc

    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Hand freed heap pages back to the system: glibc keeps them otherwise, and a model loaded next would add
    its memory on top (after a 2 min window of speech, 220 MB came back)."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
