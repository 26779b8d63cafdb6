"""Prometheus metrics in the text exposition format, without a client library."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._durations: dict[str, list[float]] = {}  # route -> bucket counts..., sum, count
        self._gauges: dict[str, Callable[[], float]] = {}
        self._counters: dict[str, int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            row = self._durations.setdefault(route, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    row[i] += 1
            row[-2] += seconds
            row[-1] += 1

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self._gauges[name] = read

    def render(self) -> str:
        lines = [
            "# HELP polymodal_http_requests_total HTTP requests by method, route and status.",
            "# TYPE polymodal_http_requests_total counter",
        ]
        with self._lock:
            requests = dict(self._requests)
            durations = {k: list(v) for k, v in self._durations.items()}
            counters = dict(self._counters)
        for (method, route, status), n in sorted(requests.items()):
            labels = f'method="{method}",route="{_esc(route)}",status="{status}"'
            lines.append(f"polymodal_http_requests_total{{{labels}}} {n}")
        lines += [
            "# HELP polymodal_http_request_duration_seconds Time to answer, by route.",
            "# TYPE polymodal_http_request_duration_seconds histogram",
        ]
        for route, row in sorted(durations.items()):
            label = f'route="{_esc(route)}"'
            for bound, n in zip(BUCKETS, row, strict=False):
                lines.append(f'polymodal_http_request_duration_seconds_bucket{{{label},le="{bound}"}} {int(n)}')
            lines.append(f'polymodal_http_request_duration_seconds_bucket{{{label},le="+Inf"}} {int(row[-1])}')
            lines.append(f"polymodal_http_request_duration_seconds_sum{{{label}}} {row[-2]:.6f}")
            lines.append(f"polymodal_http_request_duration_seconds_count{{{label}}} {int(row[-1])}")
        for name, n in sorted(counters.items()):
            lines += [f"# TYPE polymodal_{name}_total counter", f"polymodal_{name}_total {n}"]
        for name, read in sorted(self._gauges.items()):
            lines += [f"# TYPE polymodal_{name} gauge", f"polymodal_{name} {_number(read)}"]
        return "\n".join(lines) + "\n"


def _number(read: Callable[[], Any]) -> str:
    try:
        return f"{float(read()):g}"
    except Exception:  # a gauge that cannot be read is reported as not-a-number, never an error
        return "NaN"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            import os

            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MetricsMiddleware:
    """Pure ASGI middleware: counts requests and times them by route template (not raw path)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static") else "other")
            self.metrics.observe(scope.get("method", ""), name, status["code"], time.perf_counter() - started)
