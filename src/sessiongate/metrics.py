"""Prometheus metrics (one registry per gateway, so several gateways can share a process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """Counters and histograms a gateway exports on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.resolutions = self._counter(
            "sessiongate_resolutions", "Session addresses resolved, by decision", "decision"
        )
        self.sessions_created = self._counter(
            "sessiongate_sessions_created", "Sessions created, by origin", "origin"
        )
        self.run_latency = Histogram(
            "sessiongate_run_seconds",
            "Run latency from start to reply, by runtime and outcome",
            ["runtime", "status"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
        )
        self.connections_shed = self._counter(
            "sessiongate_connections_shed",
            "Connections refused or closed for exceeding a budget (gateway.limits), by reason",
            "reason",
        )
        self.failed_auth = self._counter(
            "sessiongate_failed_auth",
            "Wrong tokens or sign-ins (outcome denied) and attempts refused unchecked while the"
            " client address is over gateway.limits.failedAuth* (outcome locked), by surface",
            "surface",
            "outcome",
        )
        self.audit_failures = self._counter(
            "sessiongate_audit_write_failures", "Audit lines that could not be written"
        )

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        """A counter in this gateway's registry."""
        return Counter(name, documentation, labels, registry=self.registry)

    # labels() validates and locks on every call; the children are cached instead.
    def resolved(self, decision: str) -> None:
        """Count one resolution: hit, created, warned, rejected or invalid."""
        self._child(self.resolutions, decision).inc()

    def created(self, origin: str) -> None:
        """Count one session created, by origin."""
        self._child(self.sessions_created, origin).inc()

    def shed(self, reason: str) -> None:
        """Count one connection refused or closed over a budget (gateway.limits)."""
        self._child(self.connections_shed, reason).inc()

    def auth_failed(self, surface: str, outcome: str) -> None:
        """Count one failed authentication (`denied`) or one refused unchecked (`locked`)."""
        self._child(self.failed_auth, surface, outcome).inc()

    def observe_run(self, runtime: str, status: str, seconds: float) -> None:
        """Record one run's latency."""
        self._child(self.run_latency, runtime, status).observe(seconds)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
