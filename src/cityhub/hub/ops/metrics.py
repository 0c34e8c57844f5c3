"""Prometheus metrics. Each hub has its own registry so several hubs (tests) never share counters."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from cityhub.kit.web import StatusNoted


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cityhub_http_requests_total",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "cityhub_http_request_duration_seconds",
            "HTTP request duration by method and route template.",
            ("method", "route"),
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.mount_prefixes: list[str] = []
        self.plain_paths: set[str] = set()

    def template(self, scope: Scope, status: int) -> str:
        route: Any = scope.get("route")
        template: str | None = getattr(route, "path", None)
        path: str = scope.get("path", "")
        if template is None:
            # FastAPI's own pages (docs, OpenAPI) are plain routes; anything else unknown is one label
            return path if status < 400 and path in self.plain_paths else "unmatched"
        for prefix in self.mount_prefixes:
            if path.startswith(prefix + "/") and not template.startswith(prefix + "/"):
                return prefix + template
        return template

    def add_gauges(self, collect: Callable[[], Iterable[Sample]]) -> None:
        """Gauges read at scrape time from ``collect``'s samples."""
        self.registry.register(_CallbackCollector(collect))


#: name, help, labels, value
Sample = tuple[str, str, dict[str, str], float]


class _CallbackCollector(Collector):
    def __init__(self, collect: Callable[[], Iterable[Sample]]) -> None:
        self.collect_samples = collect

    def collect(self) -> Iterable[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for name, help_text, labels, value in self.collect_samples():
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, help_text, labels=list(labels))
            family.add_metric(list(labels.values()), value)
        return list(families.values())

    def describe(self) -> Iterable[Metric]:
        return []


class MetricsMiddleware:
    """Counts requests by route template, never by raw path, so label cardinality stays bounded.

    Routers mounted under a prefix may report their template without it (FastAPI includes routers
    lazily), so the prefixes the hub mounted are put back in front of such templates."""

    def __init__(self, app: ASGIApp, metrics: HubMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = StatusNoted(send)
        try:
            await self.app(scope, receive, sent)
        finally:
            status = sent.status
            template = self.metrics.template(scope, status)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
