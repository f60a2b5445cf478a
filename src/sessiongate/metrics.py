"""Prometheus metrics (one registry per gateway, so several gateways can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """Counters and histograms a gateway exports on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.resolutions = Counter(
            "sessiongate_resolutions",
            "Session addresses resolved, by decision",
            ["decision"],
            registry=self.registry,
        )
        self.sessions_created = Counter(
            "sessiongate_sessions_created",
            "Sessions created, by origin",
            ["origin"],
            registry=self.registry,
        )
        self.run_latency = Histogram(
            "sessiongate_run_seconds",
            "Run latency from start to reply, by runtime and outcome",
            ["runtime", "status"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
        )
        self.audit_failures = Counter(
            "sessiongate_audit_write_failures",
            "Audit lines that could not be written",
            registry=self.registry,
        )
