"""Fire-and-forget sends per second on one SQLite gateway, with and without the access log.

    .venv/bin/python -m benchmarks.send_cost [--rounds 3] [--sends 4000] [--clients 16]

The per-send cost to compare across versions (run it in each checkout, alternating):
throughput with 16 clients is bound by the gateway's CPU per send. Each round starts a
fresh `sessiongate serve`, warms it with 500 sends, then times `--sends`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from benchmarks._common import free_port, gateway_command, print_table, process
from benchmarks.postgres_throughput import blast

LOG_LEVELS = {"access log on (default)": None, "access log off (warning)": "warning"}


async def one_round(level: str | None, sends: int, clients: int) -> float:
    if level is None:
        os.environ.pop("SESSIONGATE_LOG_LEVEL", None)
    else:
        os.environ["SESSIONGATE_LOG_LEVEL"] = level
    with tempfile.TemporaryDirectory() as name:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(gateway_command(Path(name), port, None, create_on_miss=True), url):
            await blast([url], 500, clients)
            return await blast([url], sends, clients)


async def main(rounds: int, sends: int, clients: int) -> None:
    results: dict[str, list[float]] = {name: [] for name in LOG_LEVELS}
    for _ in range(rounds):
        for name, level in LOG_LEVELS.items():
            results[name].append(await one_round(level, sends, clients))
    rows = [
        (name, f"{sorted(values)[len(values) // 2]:,.0f}", ", ".join(f"{v:,.0f}" for v in values))
        for name, values in results.items()
    ]
    print_table(f"sends/s, {clients} clients, SQLite", rows, ("setup", "median", "rounds"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sends", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.sends, args.clients))
