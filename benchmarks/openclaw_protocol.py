"""An `agent` turn in OpenClaw's dialect (WebSocket `/`) against a native one (WebSocket `/ws`).

Both against one `sessiongate serve` in its own process, echo agents, SQLite; sequential
turns over one connection each, alternated in rounds so machine noise hits both alike.
The OpenClaw turn is what `openclaw agent` does: `agent {agentId, sessionKey, message,
deliver, timeout, idempotencyKey}` (a fresh key per turn), the `accepted` answer, the
`agent` / `chat` events, the final answer. Target: at most 1.5x the native turn.

Run: .venv/bin/python -m benchmarks.openclaw_protocol [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from benchmarks._common import (
    TOKEN,
    console,
    free_port,
    gateway_command,
    print_table,
    process,
    timed,
)
from benchmarks._common import summary as percentiles
from benchmarks.gateway_e2e import WsCaller, interleaved
from benchmarks.gateway_e2e import request as native_request

NATIVE = "native WebSocket agent turn (/ws)"
OPENCLAW = "OpenClaw-dialect agent turn (/)"


class OpenClawCaller:
    """Sequential `agent` turns as OpenClaw's CLI sends them."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.turns = 0

    async def __call__(self, i: int) -> object:
        self.turns += 1  # a fresh idempotency key per turn, as the CLI makes one
        rid = f"r{self.turns}"
        params = {
            "agentId": "peggy",
            "sessionKey": "agent:peggy:main",
            "message": f"m{i}",
            "deliver": False,
            "timeout": 600,
            "idempotencyKey": f"bench-{rid}",
        }
        await self.ws.send(
            json.dumps({"type": "req", "id": rid, "method": "agent", "params": params})
        )
        answers = 0
        while answers < 2:  # `accepted`, then the final answer (events in between)
            frame = json.loads(await self.ws.recv())
            if frame["type"] == "res" and frame["id"] == rid:
                assert frame["ok"], frame
                answers += 1
        return frame


async def openclaw_connect(url: str) -> ClientConnection:
    ws = await connect(url)
    assert json.loads(await ws.recv())["event"] == "connect.challenge"
    hello = {
        "minProtocol": 3,
        "maxProtocol": 3,
        "client": {"id": "cli", "version": "2026.5.7", "platform": "linux", "mode": "cli"},
        "role": "operator",
        "scopes": ["operator.write"],
        "auth": {"token": TOKEN},
    }
    await ws.send(json.dumps({"type": "req", "id": "c", "method": "connect", "params": hello}))
    assert json.loads(await ws.recv())["ok"]
    return ws


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def server_cpu(
    pid: int, callers: dict[str, Any], count: int, rounds: int
) -> dict[str, float]:
    """Gateway CPU microseconds per turn, by path (what other load on the machine barely moves)."""
    used = dict.fromkeys(callers, 0.0)
    for _ in range(rounds):
        for name, caller in callers.items():
            before = cpu_seconds(pid)
            await timed(caller, max(1, count // rounds))
            used[name] += cpu_seconds(pid) - before
    return {name: 1e6 * seconds / count for name, seconds in used.items()}


async def measure(count: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(gateway_command(Path(name), port, create_on_miss=True), url) as gateway:
            async with (
                connect(f"ws://127.0.0.1:{port}/ws") as native,
                await openclaw_connect(f"ws://127.0.0.1:{port}/") as openclaw,
            ):
                await native_request(native, 0, "connect", {"token": TOKEN})
                callers = {NATIVE: WsCaller(native), OPENCLAW: OpenClawCaller(openclaw)}
                samples = await interleaved(callers, count, rounds)
                cpu = await server_cpu(gateway.pid, callers, count, rounds)
    stats = {name: percentiles(values) for name, values in samples.items()}
    return {
        "stats": stats,
        "cpu_us": cpu,
        "ratio": stats[OPENCLAW]["p50_us"] / stats[NATIVE]["p50_us"],
        # CPU time moves in clock ticks (10 ms): a smoke run of a few turns may see none
        "cpu_ratio": cpu[OPENCLAW] / cpu[NATIVE] if cpu[NATIVE] else float("nan"),
    }


def report(count: int, result: dict[str, Any]) -> None:
    rows = [
        (name, f"{s['p50_us'] / 1000:.3f}", f"{s['p95_us'] / 1000:.3f}",
         f"{result['cpu_us'][name]:.0f}")
        for name, s in result["stats"].items()
    ]  # fmt: skip
    print_table(f"agent turn, {count} sequential turns each, interleaved", rows,
                ("path", "p50 ms", "p95 ms", "gateway CPU µs/turn"))  # fmt: skip
    console.print(
        f"OpenClaw-dialect turn / native turn = {result['ratio']:.2f}x p50 latency, "
        f"{result['cpu_ratio']:.2f}x gateway CPU (target <= 1.5x)"
    )


async def main(count: int, rounds: int) -> None:
    report(count, await measure(count, rounds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("SESSIONGATE_STATE_DIR", tempfile.mkdtemp(prefix="sg-bench-"))
    asyncio.run(main(args.count, args.rounds))
