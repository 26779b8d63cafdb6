"""Logging for the command line and the service: the standard library's ``logging``, set up in one place.

Modules log with ``logging.getLogger(__name__)`` (loggers under ``polymodal``). Nothing is set up on import: a
program that imports polymodal as a library keeps its own logging. :func:`configure` (called by the CLI) sends
records to stderr as text, or as one JSON object per line for services (``--log-json``), and keeps a log file
(``polymodal.log`` in the user log folder) where internal errors leave their traceback under an incident id.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

ROOT = "polymodal"
LEVELS = ("debug", "info", "warning", "error")
_FILE_HANDLER_NAME = "polymodal-file"

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("incident", "stage", "seconds", "path", "status"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(
    level: str = "warning", json_lines: bool = False, debug: bool = False, log_file: Path | None = None
) -> Callable[[], None]:
    """Send polymodal's records at ``level`` or above to stderr (text or JSON lines); with ``debug``, everything
    (timings per stage, tracebacks). Records of ERROR and above also go to ``log_file`` when it can be written.
    Returns what puts the ``polymodal`` logger back as it was (``cli.main`` called in-process leaves no trace)."""
    if level not in LEVELS:
        from polymodal.errors import ConfigError

        raise ConfigError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    root = logging.getLogger(ROOT)
    saved = (list(root.handlers), root.level, root.propagate)
    for handler in saved[0]:
        root.removeHandler(handler)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.DEBUG if debug else getattr(logging, level.upper()))
    stderr.setFormatter(JsonFormatter() if json_lines else _TextFormatter(tracebacks=debug or json_lines))
    if not debug and not json_lines:
        stderr.addFilter(lambda record: not getattr(record, "told", False))
    root.addHandler(stderr)
    root.setLevel(logging.DEBUG if debug else min(stderr.level, logging.ERROR))
    root.propagate = False
    if log_file is not None:
        _add_file_handler(root, log_file)

    def restore() -> None:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        root.propagate = saved[2]

    return restore


class _TextFormatter(logging.Formatter):
    """``LEVEL logger: message``; the traceback only when asked (``--debug``), else it is the log file's."""

    def __init__(self, tracebacks: bool):
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.lower()} {record.name}: {record.getMessage()}"
        if self.tracebacks and record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _LazyFileHandler(logging.FileHandler):
    """A log file made (with its folder) only when a record is written: a command that fails nowhere writes nothing."""

    def _open(self):  # noqa: ANN202 (logging's signature)
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass  # a log file that cannot be written (a read-only home): the terminal still has the message


def _add_file_handler(root: logging.Logger, path: Path) -> None:
    handler = _LazyFileHandler(path, encoding="utf-8", delay=True)
    handler.set_name(_FILE_HANDLER_NAME)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)


def log_file_path() -> Path | None:
    """Where internal errors leave their tracebacks, if a log file is set up."""
    for handler in logging.getLogger(ROOT).handlers:
        if handler.get_name() == _FILE_HANDLER_NAME and isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def default_log_file() -> Path:
    """``$POLYMODAL_LOG_FILE``, else ``polymodal.log`` in the user log folder (``~/.local/state/polymodal/log``)."""
    if os.environ.get("POLYMODAL_LOG_FILE"):
        return Path(os.environ["POLYMODAL_LOG_FILE"]).expanduser()
    from platformdirs import user_log_dir

    return Path(user_log_dir("polymodal")) / "polymodal.log"


@contextmanager
def timed(stage: str, logger: logging.Logger | None = None) -> Iterator[None]:
    """Log how long ``stage`` took, at DEBUG (shown with ``--debug``)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        (logger or log).debug("%s took %.3f s", stage, seconds, extra={"stage": stage, "seconds": round(seconds, 4)})


F = TypeVar("F", bound=Callable[..., Any])


def stage(name: str) -> Callable[[F], F]:
    """Decorate a pipeline stage: each call's time is logged at DEBUG under its module's logger (``--debug``
    shows them); nothing is measured when DEBUG is off."""

    def decorate(function: F) -> F:
        logger = logging.getLogger(function.__module__)

        @functools.wraps(function)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            if not logger.isEnabledFor(logging.DEBUG):
                return function(*args, **kwargs)
            with timed(name, logger):
                return function(*args, **kwargs)

        return timed_call  # type: ignore[return-value]

    return decorate
