"""What every benchmark shares: timing, percentiles, and a table printer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.table import Table

console = Console()


async def timed(call: Callable[[int], Awaitable[object]], count: int) -> list[float]:
    """Seconds per call of `call(i)` for i in range(count)."""
    samples = []
    for i in range(count):
        start = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - start)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[float]) -> dict[str, float]:
    """p50 / p95 / mean in microseconds."""
    return {
        "p50_us": percentile(samples, 0.50) * 1e6,
        "p95_us": percentile(samples, 0.95) * 1e6,
        "mean_us": statistics.fmean(samples) * 1e6,
    }


def print_table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)
