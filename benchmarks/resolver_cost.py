"""Cost of one resolver call per store: hit, first hit, reject (strict miss), create.

A *hit* addresses a session this process resolved before (remembered: no store
round trip); a *first hit* one it has not (one lookup) — the fair comparison for
a strict *reject*, which must always ask the store.

Run: .venv/bin/python -m benchmarks.resolver_cost [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks._common import (
    POSTGRES_URL,
    postgres_reachable,
    print_table,
    summary,
    timed,
)
from sessiongate.audit import AuditLog
from sessiongate.config import parse_config
from sessiongate.errors import SessionNotFoundError
from sessiongate.metrics import GatewayMetrics
from sessiongate.resolver import Caller, Resolver
from sessiongate.store import (
    MemorySessionStore,
    NewSession,
    Provenance,
    SessionStore,
    SqliteSessionStore,
)
from sessiongate.store import open_store as open_sessiongate_store

CALLER = Caller("agent:peggy:main", "bench")
BENCH_SCHEMA = f"sg_bench_{os.getpid()}"


def config(tmp: Path, create_on_miss: bool) -> Any:
    return parse_config(
        {
            "gateway": {"sessions": {"createOnMiss": create_on_miss}},
            "audit": {"path": str(tmp / "audit.jsonl")},
            "tools": {
                "sessions": {"visibility": "all"},
                "agentToAgent": {"enabled": True, "allow": ["*"]},
            },
        },
        "bench",
    )


async def open_store(kind: str, tmp: Path) -> SessionStore:
    if kind == "memory":
        return MemorySessionStore()
    if kind == "postgres":
        return await open_sessiongate_store(f"{POSTGRES_URL}?schema={BENCH_SCHEMA}")
    return await SqliteSessionStore.open(tmp / "bench.db")


async def drop_bench_schema() -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{BENCH_SCHEMA}" CASCADE')
    await conn.close()


def resolver(cfg: Any, store: SessionStore) -> Resolver:
    metrics = GatewayMetrics()
    return Resolver(cfg, store, metrics, AuditLog(cfg.audit_path, metrics))


async def measure(kind: str, count: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        store = await open_store(kind, tmp)
        permissive = resolver(config(tmp, True), store)
        strict = resolver(config(tmp, False), store)
        await permissive.ensure_startup_sessions()

        for i in range(count):  # sessions this process has never resolved
            await store.ensure(NewSession(f"agent:atlas:direct:{i}", "atlas", "direct",
                                          Provenance("bench")))  # fmt: skip

        async def hit(i: int) -> object:
            return await permissive.resolve("AGENT:ATLAS:MAIN", CALLER)

        async def first_hit(i: int) -> object:
            return await strict.resolve(f"agent:atlas:direct:{i}", CALLER)

        async def reject(i: int) -> object:
            try:
                await strict.resolve(f"agent:atlas:telegram:atlas:direct:{i}", CALLER)
            except SessionNotFoundError:
                return None
            raise AssertionError("a strict miss must be refused")

        async def create(i: int) -> object:
            return await permissive.resolve(f"agent:atlas:cron:job-{i}", CALLER)

        results = {
            "hit": summary(await timed(hit, count)),
            "first-hit": summary(await timed(first_hit, count)),
            "reject": summary(await timed(reject, count)),
            "create": summary(await timed(create, count)),
        }
        await store.close()
        if kind == "postgres":
            await drop_bench_schema()
        return results


async def main(count: int) -> None:
    rows = []
    kinds = ["memory", "sqlite"] + (["postgres"] if await postgres_reachable() else [])
    for kind in kinds:
        for path, stats in (await measure(kind, count)).items():
            rows.append((kind, path, *(f"{stats[k]:.1f}" for k in ("p50_us", "p95_us", "mean_us"))))
    header = ("store", "path", "p50 µs", "p95 µs", "mean µs")
    print_table(f"resolver cost per call ({count} calls each)", rows, header)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    asyncio.run(main(parser.parse_args().count))
