"""Prometheus metrics (one registry per gateway, so several gateways can share a process)."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_go_float = cast(Callable[[float], str], floatToGoString)  # the exposition's edges, as theirs

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """Counters and histograms a gateway exports on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.resolutions = CountedCounter(  # one per send: plain counts, read at scrape
            "sessiongate_resolutions", "Session addresses resolved, by decision", ("decision",)
        )
        self.registry.register(self.resolutions)
        self.sessions_created = self._counter(
            "sessiongate_sessions_created", "Sessions created, by origin", "origin"
        )
        self.run_latency = CountedHistogram(
            "sessiongate_run_seconds",
            "Run latency from start to reply, by runtime and outcome",
            ("runtime", "status"),
            (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
        )
        self.registry.register(self.run_latency)
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
        self.resolutions.inc((decision,))

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
        self.run_latency.observe((runtime, status), seconds)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


def _use_created() -> bool:
    """Whether `_created` samples are exposed (prometheus' own switch, read at scrape)."""
    return bool(getattr(prometheus_metrics, "_use_created", True))


class CountedCounter(Collector):
    """A labelled counter kept as plain counts and read at scrape: the exposition of
    prometheus' `Counter` (``_total``, ``_created``) without its lock per increment.
    Counted from the event loop only."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._counts: dict[tuple[str, ...], float] = {}
        self._created: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...]) -> None:
        """Count one in the series of `labels`."""
        count = self._counts.get(labels)
        if count is None:
            self._created[labels] = time.time()
            count = 0.0
        self._counts[labels] = count + 1.0

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "counter")
        created = _use_created()
        for values, count in list(self._counts.items()):
            labels = dict(zip(self.labels, values, strict=True))
            metric.add_sample(f"{self.name}_total", labels, count)
            if created:
                metric.add_sample(f"{self.name}_created", labels, self._created[values])
        yield metric


class CountedHistogram(Collector):
    """A labelled histogram kept as plain counts and read at scrape: the exposition of
    prometheus' `Histogram` (names, labels, bucket edges, ``_created``) without its lock
    per bucket and per sum on every observation. Observed from the event loop only."""

    def __init__(
        self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.bounds = tuple(float(edge) for edge in buckets)
        self._edges = (*(_go_float(edge) for edge in self.bounds), "+Inf")
        self._series: dict[tuple[str, ...], _Series] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Count `value` in the series of `labels` (in the first bucket whose edge it is
        not above, as prometheus does)."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(len(self._edges))
        series.counts[bisect.bisect_left(self.bounds, value)] += 1
        series.total += value

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "histogram")
        created = _use_created()
        for values, series in list(self._series.items()):
            labels = dict(zip(self.labels, values, strict=True))
            cumulative = 0
            for edge, count in zip(self._edges, series.counts, strict=True):
                cumulative += count
                metric.add_sample(f"{self.name}_bucket", {**labels, "le": edge}, cumulative)
            metric.add_sample(f"{self.name}_count", labels, cumulative)
            metric.add_sample(f"{self.name}_sum", labels, series.total)
            if created:
                metric.add_sample(f"{self.name}_created", labels, series.created)
        yield metric


class _Series:
    __slots__ = ("counts", "created", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets  # per bucket, not cumulative (the last is +Inf)
        self.total = 0.0
        self.created = time.time()
