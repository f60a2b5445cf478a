"""Fire-and-forget sends per second on one SQLite gateway, with and without the access log,
and the gateway process's CPU time per send.

    .venv/bin/python -m benchmarks.send_cost [--rounds 3] [--sends 4000] [--clients 16]

The per-send cost to compare across versions (run it in each checkout, alternating):
throughput with 16 clients is bound by the gateway's CPU per send; on a shared machine
the CPU microseconds the gateway process spends per send (its runs included) vary
far less than throughput does. Each round starts a fresh `sessiongate serve`, warms
it with 500 sends, then times `--sends`.
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


SETTLE_SECONDS = 1.0  # the runs of acknowledged sends finish within this (echo agents)
BLAST_WARMUP = 200  # `blast` sends these before it times the rest


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(level: str | None, sends: int, clients: int) -> tuple[float, float]:
    if level is None:
        os.environ.pop("SESSIONGATE_LOG_LEVEL", None)
    else:
        os.environ["SESSIONGATE_LOG_LEVEL"] = level
    with tempfile.TemporaryDirectory() as name:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(gateway_command(Path(name), port, None, create_on_miss=True), url) as proc:
            await blast([url], 500, clients)
            await asyncio.sleep(SETTLE_SECONDS)
            before = cpu_seconds(proc.pid)
            rate = await blast([url], sends, clients)
            await asyncio.sleep(SETTLE_SECONDS)
            spent = cpu_seconds(proc.pid) - before
            return rate, spent / (sends + BLAST_WARMUP) * 1e6


async def main(rounds: int, sends: int, clients: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in LOG_LEVELS}
    for _ in range(rounds):
        for name, level in LOG_LEVELS.items():
            results[name].append(await one_round(level, sends, clients))
    rows = [
        (
            name,
            f"{_median([rate for rate, _ in values]):,.0f}",
            f"{_median([cpu for _, cpu in values]):,.0f}",
            ", ".join(f"{rate:,.0f} ({cpu:,.0f} µs)" for rate, cpu in values),
        )
        for name, values in results.items()
    ]
    header = ("setup", "median sends/s", "median CPU µs/send", "rounds")
    print_table(f"sends/s and gateway CPU per send, {clients} clients, SQLite", rows, header)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sends", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.sends, args.clients))
