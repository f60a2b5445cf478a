"""Store cost against store size: get, ensure, list-first-page and append at 1k … 1M sessions.

Sessions are bulk-loaded straight into the store's tables (loading is not what
is measured), then each operation is timed through the store API.

Run: .venv/bin/python -m benchmarks.store_scaling [--sizes 1000,10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks._common import (
    POSTGRES_URL,
    console,
    percentile,
    print_table,
    timed,
)
from sessiongate.store import NewSession, Provenance, SessionStore, SqliteSessionStore, open_store
from sessiongate.store.postgres import split_schema

AGENTS = ["atlas", "peggy", "a2", "a3", "a4", "a5", "a6", "a7"]
OPS = ("get", "ensure", "list-first-page", "append")
COLUMNS = ["key", "agent_id", "kind", "origin", "created_at", "updated_at"]


def session_rows(start: int, stop: int) -> list[tuple[Any, ...]]:
    stamp = time.time()
    return [
        (f"agent:{AGENTS[i % 8]}:cron:job-{i}", AGENTS[i % 8], "cron", "bench", stamp, stamp)
        for i in range(start, stop)
    ]


def fill_sqlite(path: Path, start: int, stop: int) -> None:
    with sqlite3.connect(path) as conn:
        for chunk in range(start, stop, 100_000):
            rows = session_rows(chunk, min(stop, chunk + 100_000))
            conn.executemany(
                f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)", rows
            )


async def fill_postgres(url: str, start: int, stop: int) -> None:
    dsn, schema = split_schema(url)
    conn = await asyncpg.connect(dsn)
    try:
        for chunk in range(start, stop, 100_000):
            rows = session_rows(chunk, min(stop, chunk + 100_000))
            await conn.copy_records_to_table(
                "sessions", records=rows, columns=COLUMNS, schema_name=schema
            )
        await conn.execute(f'ANALYZE "{schema}".sessions')
    finally:
        await conn.close()


async def measure_ops(store: SessionStore, size: int, count: int) -> dict[str, float]:
    """p50 microseconds of each operation with `size` sessions stored."""
    rng = random.Random(size)
    existing = [f"agent:{AGENTS[i % 8]}:cron:job-{i}" for i in rng.sample(range(size), count)]
    await store.list_sessions(agent_id="atlas", limit=50)  # warm the page cache
    calls: dict[str, Callable[[int], Awaitable[object]]] = {
        "get": lambda i: store.find(existing[i]),
        "ensure": lambda i: store.ensure(
            NewSession(f"agent:a7:cron:new-{size}-{i}", "a7", "cron", Provenance("bench"))
        ),
        "list-first-page": lambda i: store.list_sessions(agent_id="atlas", limit=50),
        "append": lambda i: store.append_message(existing[i], "user", "hello"),
    }
    results = {}
    for op, call in calls.items():
        await timed(lambda i, call=call: call(i % count), min(count, 50))  # warm-up
        results[op] = percentile(await timed(call, count), 0.5) * 1e6
    return results


Filler = Callable[[int, int], Awaitable[None]]


async def scale(
    name: str, store: SessionStore, fill: Filler, sizes: list[int], count: int
) -> dict[int, dict[str, float]]:
    results: dict[int, dict[str, float]] = {}
    loaded = 0
    for size in sizes:
        started = time.perf_counter()
        await fill(loaded, size)
        console.print(
            f"[dim]{name}: loaded {size:,} sessions in {time.perf_counter() - started:.1f}s[/]"
        )
        loaded = size
        results[size] = await measure_ops(store, size, count)
    return results


async def sqlite_scaling(
    sizes: list[int], count: int, keep: Path | None = None
) -> dict[int, dict[str, float]]:
    with tempfile.TemporaryDirectory() as name:
        path = (keep or Path(name)) / "scale.db"
        store = await SqliteSessionStore.open(path)

        async def fill(start: int, stop: int) -> None:
            await asyncio.to_thread(fill_sqlite, path, start, stop)

        try:
            return await scale("sqlite", store, fill, sizes, count)
        finally:
            await store.close()


async def postgres_scaling(sizes: list[int], count: int) -> dict[int, dict[str, float]]:
    schema = f"sg_bench_scale_{os.getpid()}"
    url = f"{POSTGRES_URL}?schema={schema}"
    store = await open_store(url)

    async def fill(start: int, stop: int) -> None:
        await fill_postgres(url, start, stop)

    try:
        return await scale("postgres", store, fill, sizes, count)
    finally:
        await store.close()
        conn = await asyncpg.connect(POSTGRES_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def scaling_rows(store: str, results: dict[int, dict[str, float]]) -> list[tuple[str, ...]]:
    base = results[min(results)]
    return [
        (store, op, f"{size:,}", f"{values[op]:.1f}", f"{values[op] / base[op]:.2f}")
        for op in OPS
        for size, values in sorted(results.items())
    ]


def plot(all_results: dict[str, dict[int, dict[str, float]]], path: Path) -> None:
    """Latency against session count, one panel per store (needs sessiongate[bench])."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        print(f"no plot ({path.name}): matplotlib is in the bench extra, `bash scripts/bench.sh`")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_results), figsize=(6 * len(all_results), 4), squeeze=False)
    for ax, (store, results) in zip(axes[0], all_results.items(), strict=True):
        sizes = sorted(results)
        for op in OPS:
            ax.plot(sizes, [results[s][op] for s in sizes], marker="o", label=op)
        ax.set_xscale("log")
        ax.set_xlabel("sessions in the store")
        ax.set_ylabel("p50 latency (µs)")
        ax.set_title(f"{store}: cost per call against store size")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main(sizes: list[int], count: int) -> None:
    results = {"sqlite": await sqlite_scaling(sizes, count)}
    results["postgres"] = await postgres_scaling(sizes, count)
    rows = [row for store, r in results.items() for row in scaling_rows(store, r)]
    print_table("store scaling (p50)", rows, ("store", "op", "sessions", "p50 µs", "vs smallest"))
    plot(results, Path("benchmarks/results/latency_vs_sessions.png"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.count))
