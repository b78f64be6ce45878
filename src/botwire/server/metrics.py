"""Prometheus metrics, one registry per application (each worker process reports its own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "botwire_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "botwire_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "botwire_errors",
            "Error answers, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.quota_rejections = Counter(
            "botwire_quota_rejections",
            "Writes refused by a quota, by kind (writes per day or stored bytes).",
            ["kind"],
            registry=self.registry,
        )
