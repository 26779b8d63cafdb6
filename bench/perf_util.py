"""Small helpers shared by the performance benchmarks: percentiles, memory, machine load."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from pathlib import Path


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": round(statistics.median(ordered), 2), "p95": at(0.95), "p99": at(0.99), "n": len(ordered)}


def _status(pid: int | str, key: str) -> float:
    """A /proc/PID/status field in MB (0 where unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int | str = "self") -> float:
    return _status(pid, "VmRSS")


def peak_rss_mb(pid: int | str = "self") -> float:
    return _status(pid, "VmHWM")


def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident memory, split into anonymous (heap, models) and file-backed (memory-mapped files) pages."""
    return {key: _status(pid, name) for key, name in (("rss", "VmRSS"), ("anon", "RssAnon"), ("file", "RssFile"))}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, object]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": _meminfo_gb(), "python": platform.python_version()}


def _meminfo_gb() -> float:
    try:
        line = Path("/proc/meminfo").read_text().splitlines()[0]
        return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, IndexError, ValueError):
        return 0.0
