"""Strict rejection against a resolver hit: p50 and server CPU per request, this checkout
against another (``--base DIR``, served through ``PYTHONPATH``); or py-spy on each kind.

    .venv/bin/python -m benchmarks.profile_reject --base ../base/src [--rounds 8]
        [--calls 1500] [--block 50]
    .venv/bin/python -m benchmarks.profile_reject --profile refuse get-miss hit [--seconds 30]

Every gateway has the floor's config (one ``createOnMiss: false`` rule). The kinds, each a
sequential request over a keep-alive connection: ``refuse``, ``sessions_send`` to the
incident's key (404, as the floor's strict rejection); ``get-miss``, ``GET
/v1/sessions/{missing}`` (404); ``hit``, ``GET /v1/sessions/agent:atlas:main``.

A/B: both gateways serve side by side; each round goes over every (gateway, kind) in blocks
of ``--block`` requests, the order rotating from block to block, so the machine's other load
falls on all of them alike; per round, the p50 of each and the gateway's CPU per request
(``/proc/<pid>/stat``), then the medians of the rounds. ``--profile``: one gateway per kind,
loaded in turn (blocks of 100) while py-spy records each (GIL-holding samples), then the
µs per request of each function, own and total, and each kind's difference from the last.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from benchmarks._common import TOKEN, free_port, percentile, process
from benchmarks._loadgen import _read_response, render_get
from benchmarks.floor import HOST, MISSING, cpu_seconds, gateway_config, send_request

HIT = "agent:atlas:main"
KINDS = ("refuse", "get-miss", "hit")

Cell = tuple[str, str]  # (gateway, kind)


def make(kind: str, port: int) -> tuple[Callable[[int], bytes], int]:
    """The requests of `kind` and the status each must get."""
    if kind == "refuse":
        return send_request(port, None, [MISSING]), 404
    key = MISSING if kind == "get-miss" else HIT
    request = render_get(HOST, port, f"/v1/sessions/{key}", TOKEN)
    return (lambda i: request), (404 if kind == "get-miss" else 200)


def gateway(stack: ExitStack, tmp: Path, src: str | None) -> tuple[int, int]:
    """A gateway with the floor's config (from `src` when given); its port and pid."""
    port = free_port()
    config = gateway_config(tmp, port, free_port(), None)
    env = {"PYTHONPATH": src} if src else {}
    command = [sys.executable, "-m", "sessiongate", "serve", "--config", str(config)]
    proc = stack.enter_context(process(command, f"http://{HOST}:{port}", env))
    return port, proc.pid


class Client:
    """Sequential requests of one kind over one keep-alive connection to one gateway."""

    def __init__(self, port: int, pid: int, kind: str) -> None:
        self.port, self.pid, self.kind = port, pid, kind
        self.request, self.status = make(kind, port)
        self.samples: list[float] = []
        self.cpu = 0.0

    async def open(self) -> Client:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        return self

    async def run(self, count: int) -> None:
        """`count` requests; their latencies and the gateway's CPU time are added up."""
        before = cpu_seconds(self.pid)
        for i in range(count):
            started = time.perf_counter()
            self.writer.write(self.request(i))
            status, body = await _read_response(self.reader)
            self.samples.append(time.perf_counter() - started)
            if status != self.status:
                raise AssertionError(f"{self.kind}: status {status}: {body[:300]!r}")
        self.cpu += cpu_seconds(self.pid) - before

    def take(self) -> tuple[float, float]:
        """p50 and CPU per request (µs) since the last take."""
        figures = percentile(self.samples, 0.5) * 1e6, self.cpu / len(self.samples) * 1e6
        self.samples, self.cpu = [], 0.0
        return figures


async def load_in_turn(clients: list[Client], calls: int, block: int) -> None:
    """`calls` requests of each client, in blocks, the order rotating from block to block."""
    for index in range(max(1, calls // block)):
        shift = index % len(clients)
        order = clients[shift:] + clients[:shift]
        for client in reversed(order) if index % 2 else order:
            await client.run(block)


def _round_line(side: str, figures: dict[str, tuple[float, float]]) -> str:
    p = {kind: figures[kind][0] for kind in KINDS}
    c = {kind: figures[kind][1] for kind in KINDS}
    return (
        f"{side}: refuse/hit {p['refuse'] / p['hit']:.2f}x miss/hit {p['get-miss'] / p['hit']:.2f}x"
        f" p50 {p['refuse']:.0f}/{p['get-miss']:.0f}/{p['hit']:.0f} µs"
        f" cpu {c['refuse']:.0f}/{c['get-miss']:.0f}/{c['hit']:.0f} µs"
    )


def _summary(side: str, rounds: list[dict[str, tuple[float, float]]]) -> str:
    refuse = statistics.median(r["refuse"][0] / r["hit"][0] for r in rounds)
    like = statistics.median(r["get-miss"][0] / r["hit"][0] for r in rounds)
    cells = [
        f"{kind} p50 {statistics.median(r[kind][0] for r in rounds):.0f}"
        f" cpu {statistics.median(r[kind][1] for r in rounds):.0f}"
        for kind in KINDS
    ]
    return f"{side:5} refuse/hit {refuse:.3f}x miss/hit {like:.3f}x | " + " | ".join(cells)


async def ab(base: str, rounds: int, calls: int, block: int) -> None:
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        sides = {"base": gateway(stack, Path(name), base), "new": gateway(stack, Path(name), None)}
        clients: dict[Cell, Client] = {}
        for side, (port, pid) in sides.items():
            for kind in KINDS:
                clients[side, kind] = await Client(port, pid, kind).open()
        await load_in_turn(list(clients.values()), 300, 100)  # warm up
        for client in clients.values():
            client.take()
        results: dict[str, list[dict[str, tuple[float, float]]]] = {side: [] for side in sides}
        for index in range(rounds):
            await load_in_turn(list(clients.values()), calls, block)
            for side in sides:
                results[side].append({kind: clients[side, kind].take() for kind in KINDS})
            line = " | ".join(_round_line(side, results[side][-1]) for side in sides)
            print(f"round {index + 1}: {line}", flush=True)
        print("\nmedians of the rounds (ratios per round; p50 and CPU per request, µs)")
        for side in sides:
            print(_summary(side, results[side]))


def _tally(raw: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Samples, and samples per function (own, total) from py-spy's raw output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack_text, _, n = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack_text.split(";")]
        samples += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            total[frame] += int(n)
    return samples, own, total


def _print_table(title: str, kinds: list[str], tallies: list[Counter[str]], per: list[float],
                 top: int) -> None:  # fmt: skip
    print(f"\n{title}, µs per request: {' '.join(kinds)} (difference from {kinds[-1]})")
    names = {name for tally in tallies for name, _ in tally.most_common(top)}
    rows = [([tally[name] * p for tally, p in zip(tallies, per, strict=True)], name)
            for name in names]  # fmt: skip
    rows.sort(key=lambda row: -max(abs(v - row[0][-1]) for v in row[0]))
    for values, name in rows[:top]:
        cells = " ".join(f"{v:6.1f}" for v in values)
        diffs = " ".join(f"{v - values[-1]:+6.1f}" for v in values[:-1])
        print(f"{cells} | {diffs}  {name}")


async def profile(
    kinds: list[str], seconds: int, top: int, keep: Path | None, rate: int = 500
) -> None:
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        clients = []
        for kind in kinds:
            port, pid = gateway(stack, Path(name), None)
            clients.append(await Client(port, pid, kind).open())
        await load_in_turn(clients, 500, 100)  # warm up
        for client in clients:
            client.take()
        spy = Path(sys.executable).with_name("py-spy")
        recorders = []
        for client in clients:
            raw = Path(name) / f"{client.kind}.txt"
            command = [str(spy), "record", "--pid", str(client.pid), "--duration", str(seconds),
                       "--rate", str(rate), "--format", "raw", "--output", str(raw), "--gil",
                       "--nonblocking"]  # fmt: skip
            spying = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            recorders.append((raw, spying))
        counts = dict.fromkeys(kinds, 0)
        while all(spying.poll() is None for _, spying in recorders):
            await load_in_turn(clients, 100, 100)
            for kind in kinds:
                counts[kind] += 100
        for _, spying in recorders:
            spying.wait()
        tallies = [_tally(raw) for raw, _ in recorders]
        if keep is not None:  # py-spy's raw stacks, with line numbers
            keep.mkdir(parents=True, exist_ok=True)
            for raw, _ in recorders:
                (keep / raw.name).write_text(raw.read_text())
        per = [1e6 / rate / counts[kind] for kind in kinds]  # µs per sample and request
        for kind, client, (samples, _, _), p in zip(kinds, clients, tallies, per, strict=True):
            cpu = client.take()[1]
            print(f"{kind}: {counts[kind]} requests, {samples * p:.1f} µs GIL-held, "
                  f"{cpu:.0f} µs CPU per request")  # fmt: skip
        _print_table("own", kinds, [t[1] for t in tallies], per, top)
        _print_table("total", kinds, [t[2] for t in tallies], per, top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", help="the other checkout's src directory (A/B)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=1500, help="requests per kind per round")
    parser.add_argument("--block", type=int, default=50, help="requests per turn")
    parser.add_argument("--profile", nargs="+", choices=KINDS, help="py-spy on these kinds")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--keep", type=Path, help="keep py-spy's raw stacks in this directory")
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile(args.profile, args.seconds, args.top, args.keep))
    elif args.base:
        asyncio.run(ab(args.base, args.rounds, args.calls, args.block))
    else:
        parser.error("--base or --profile")


if __name__ == "__main__":
    main()
