"""Fire-and-forget `sessions_send` throughput on PostgreSQL with one and with two processes.

Each configuration gets a fresh schema; sends go round-robin to 16 sessions and,
with two processes, alternate between them. Every send returns once its message
is stored and its run queued (``timeoutSeconds: 0``).

Run: .venv/bin/python -m benchmarks.postgres_throughput [--sends N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from benchmarks._common import (
    POSTGRES_URL,
    TOKEN,
    console,
    free_port,
    gateway_command,
    print_table,
    process,
)
from benchmarks._loadgen import hammer, render

SESSIONS = [f"agent:atlas:cron:job-{i}" for i in range(16)]


async def blast(urls: list[str], sends: int, concurrency: int) -> float:
    """Acknowledged sends per second, `concurrency` connections spread over the gateways."""
    ports = [int(url.rsplit(":", 1)[1]) for url in urls]

    def request_for(port: int) -> Callable[[int], bytes]:
        def make(i: int) -> bytes:
            args = {"sessionKey": SESSIONS[i % len(SESSIONS)], "message": f"m{i}",
                    "timeoutSeconds": 0}  # fmt: skip
            return render("127.0.0.1", port, "/tools/invoke",
                          {"tool": "sessions_send", "args": args}, TOKEN)  # fmt: skip

        return make

    per_gateway = max(1, concurrency // len(ports))
    await asyncio.gather(*(hammer("127.0.0.1", p, request_for(p), 200, per_gateway) for p in ports))
    started = time.perf_counter()
    share = sends // len(ports)
    await asyncio.gather(
        *(hammer("127.0.0.1", p, request_for(p), share, per_gateway) for p in ports)
    )
    return share * len(ports) / (time.perf_counter() - started)


async def run(processes: int, sends: int, concurrency: int) -> float:
    schema = f"sg_bench_tp_{os.getpid()}_{processes}"
    url = f"{POSTGRES_URL}?schema={schema}"
    try:
        with tempfile.TemporaryDirectory() as name:
            ports = [free_port() for _ in range(processes)]
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            commands = [gateway_command(Path(name), p, url, create_on_miss=True) for p in ports]
            with process(commands[0], urls[0]):
                if processes == 1:
                    return await blast(urls, sends, concurrency)
                with process(commands[1], urls[1]):
                    return await blast(urls, sends, concurrency)
    finally:
        conn = await asyncpg.connect(POSTGRES_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def main(sends: int, concurrency: int) -> None:
    one = await run(1, sends, concurrency)
    two = await run(2, sends, concurrency)
    rows = [
        ("1 process", f"{one:,.0f}", "1.00x"),
        ("2 processes", f"{two:,.0f}", f"{two / one:.2f}x"),
    ]
    print_table(
        f"fire-and-forget sessions_send on PostgreSQL ({sends} sends, {concurrency} in flight)",
        rows,
        ("gateways", "sends/s", "vs 1 process"),
    )
    console.print("one load-generating client process; on 2 cores it competes with the gateways")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.sends, args.concurrency))
