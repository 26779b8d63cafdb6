"""Prometheus metrics of the service, kept and written in the text exposition format by ``prometheus_client``.

Each service has its own registry (several apps in one process, as in the tests, never share counts).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PREFIX = "polymodal"


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        disable_created_metrics()  # no `*_created` series: the start time is `uptime_seconds` already
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests by method, route and status.", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self._durations = Histogram(
            f"{PREFIX}_http_request_duration_seconds", "Time to answer, by route.", ["route"], buckets=BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._durations.labels(route).observe(seconds)

    def count(self, name: str, n: int = 1) -> None:
        name = _metric_name(name)
        with self._lock:
            counter = self._counters.get(name)
            if counter is None:
                counter = Counter(f"{PREFIX}_{name}", f"{name.replace('_', ' ')}.", registry=self.registry)
                self._counters[name] = counter
        counter.inc(n)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        name = _metric_name(name)
        with self._lock:
            gauge = self._gauges.get(name)
            if gauge is None:
                gauge = Gauge(f"{PREFIX}_{name}", f"{name.replace('_', ' ')}.", registry=self.registry)
                self._gauges[name] = gauge
        gauge.set_function(lambda: _number(read))

    def render(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


def _metric_name(name: str) -> str:
    """A name Prometheus accepts ("task_read-aloud" -> "task_read_aloud")."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _number(read: Callable[[], Any]) -> float:
    try:
        return float(read())
    except Exception:  # a gauge that cannot be read is reported as not-a-number, never an error
        return math.nan


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
