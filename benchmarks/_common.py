"""What every benchmark shares: timing, percentiles, and a table printer."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

console = Console()
TOKEN = "benchmark-token-0123456789"
POSTGRES_URL = os.environ.get(
    "SESSIONGATE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
LOG_PATH = Path(tempfile.gettempdir()) / "sessiongate-benchmark.log"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@contextmanager
def process(
    command: list[str], url: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log = LOG_PATH.open("ab")
    environ = {**os.environ, **(env or {})}
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environ)
    try:
        for _ in range(400):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def gateway_command(
    tmp: Path,
    port: int,
    storage_url: str | None = None,
    create_on_miss: bool = False,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """`sessiongate serve` with a benchmark config (echo agents, SQLite unless told)."""
    config = {
        "gateway": {
            "port": port,
            "auth": {"token": TOKEN},
            "sessions": {"createOnMiss": create_on_miss},
        },
        "storage": {"url": storage_url or f"sqlite:///{tmp / 'state.db'}"},
        "audit": {"path": str(tmp / f"audit-{port}.jsonl")},
        **(extra or {}),
    }
    path = tmp / f"bench-{port}.json5"
    path.write_text(json.dumps(config))
    return [sys.executable, "-m", "sessiongate", "serve", "--config", str(path)]


async def postgres_reachable() -> bool:
    """Whether PostgreSQL sections can run; says why not when they cannot."""
    import asyncpg

    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        console.print(f"[yellow]PostgreSQL sections skipped[/]: {exc!r}")
        return False
    await conn.close()
    return True


@asynccontextmanager
async def postgres_schema(prefix: str) -> AsyncIterator[str]:
    """A postgresql:// URL with a schema of its own, dropped afterwards."""
    import asyncpg

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        conn = await asyncpg.connect(POSTGRES_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def uvicorn_command(app: str, port: int) -> list[str]:
    """A bare app (baseline, fake upstream) under the gateway's uvicorn settings."""
    return [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning",
            "--ws-per-message-deflate", "false"]  # fmt: skip


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


# ---------------------------------------------------------------- surface cost (mcp_cost, a2a_cost)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Costs:
    """Per path: wall seconds per call, and CPU seconds per call in the gateway and the client."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    server_cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


async def interleave(callers: dict[str, Any], pid: int, count: int, rounds: int) -> Costs:
    """Every caller in turn, `rounds` times, so machine noise hits them alike."""
    costs = Costs()
    for name, caller in callers.items():
        await timed(caller, min(50, count))  # warm-up
        costs.wall[name], costs.server_cpu[name], costs.client_cpu[name] = [], 0.0, 0.0
        costs.calls[name] = 0
    per_round = max(1, count // rounds)
    for _ in range(rounds):
        for name, caller in callers.items():
            server, client = cpu_seconds(pid), time.process_time()
            costs.wall[name] += await timed(caller, per_round)
            costs.server_cpu[name] += cpu_seconds(pid) - server
            costs.client_cpu[name] += time.process_time() - client
            costs.calls[name] += per_round
    return costs


def cost_table(title: str, costs: Costs, base: str) -> dict[str, dict[str, float]]:
    """Print each path's latency and CPU per call beside its ratio to `base` (the HTTP path)."""
    figures = {
        name: {
            "p50_ms": summary(samples)["p50_us"] / 1000,
            "p95_ms": summary(samples)["p95_us"] / 1000,
            "gateway_cpu_ms": 1000 * costs.server_cpu[name] / costs.calls[name],
            "client_cpu_ms": 1000 * costs.client_cpu[name] / costs.calls[name],
        }
        for name, samples in costs.wall.items()
    }
    reference = figures[base]
    for f in figures.values():
        f["p50_vs_http"] = f["p50_ms"] / reference["p50_ms"]
        f["gateway_cpu_vs_http"] = f["gateway_cpu_ms"] / reference["gateway_cpu_ms"]
    rows = [
        (name, f"{f['p50_ms']:.3f}", f"{f['p95_ms']:.3f}", f"{f['p50_vs_http']:.2f}x",
         f"{f['gateway_cpu_ms']:.3f}", f"{f['gateway_cpu_vs_http']:.2f}x",
         f"{f['client_cpu_ms']:.3f}")
        for name, f in figures.items()
    ]  # fmt: skip
    header = ("path", "p50 ms", "p95 ms", "p50 vs HTTP", "gateway CPU ms/call", "vs HTTP",
              "client CPU ms/call")  # fmt: skip
    print_table(title, rows, header)
    return figures
