"""End-to-end gateway latency and memory, against `sessiongate serve` in its own process.

Measures p50/p95 of: HTTP sessions_send waiting for an echo reply, the same request
to a bare starlette JSON endpoint (the baseline, same machine, same run), a
WebSocket `agent` turn, and the strict rejection path; plus the gateway's idle RSS.

Run: .venv/bin/python -m benchmarks.gateway_e2e [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from benchmarks._common import (
    TOKEN,
    console,
    free_port,
    gateway_command,
    print_table,
    process,
    rss_mib,
    summary,
    timed,
)

MISSING = "agent:atlas:telegram:atlas:direct:6596143250"


class HttpCaller:
    """Sequential sessions_send calls over one keep-alive connection."""

    def __init__(self, url: str, key: str, expect: int) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"})
        self.key, self.expect = key, expect

    async def __call__(self, i: int) -> object:
        body = {"tool": "sessions_send", "args": {"sessionKey": self.key, "message": f"m{i}"}}
        response = await self.http.post("/tools/invoke", json=body)
        assert response.status_code == self.expect, response.text
        return response


class WsCaller:
    """Sequential `agent` turns over one connected WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 1

    async def __call__(self, i: int) -> object:
        self.next_id += 1
        params = {"sessionKey": "agent:peggy:main", "message": f"m{i}"}
        return await request(self.ws, self.next_id, "agent", params)


async def request(ws: ClientConnection, rid: int, method: str, params: dict[str, str]) -> object:
    await ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "res" and frame["id"] == rid:
            assert frame["ok"], frame
            return frame


async def interleaved(callers: dict[str, Any], count: int, rounds: int) -> dict[str, list[float]]:
    """Run every caller in turn, `rounds` times, so machine noise hits them alike."""
    for caller in callers.values():
        await timed(caller, 50)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in callers}
    for _ in range(rounds):
        for name, caller in callers.items():
            samples[name] += await timed(caller, count // rounds)
    return samples


async def measure(count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bare_port, gw_port = free_port(), free_port()
        bare_url, gw_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{gw_port}"
        bare_cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.bare_starlette:app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
        ]
        with process(bare_cmd, bare_url), process(gateway_command(tmp, gw_port), gw_url) as gw:
            await asyncio.sleep(1.0)
            idle_rss = rss_mib(gw.pid)
            ws_url = "ws" + gw_url.removeprefix("http") + "/ws"
            async with connect(ws_url) as ws:
                await request(ws, 0, "connect", {"token": TOKEN})
                callers = {
                    BARE: HttpCaller(bare_url, "agent:atlas:main", 200),
                    SEND: HttpCaller(gw_url, "agent:atlas:main", 200),
                    REJECT: HttpCaller(gw_url, MISSING, 404),
                    TURN: WsCaller(ws),
                }
                samples = await interleaved(callers, count, rounds)
            busy_rss = rss_mib(gw.pid)
    report(count, samples, idle_rss, busy_rss)


BARE = "bare starlette JSON endpoint"
SEND = "HTTP sessions_send (echo reply)"
REJECT = "HTTP strict rejection (404)"
TURN = "WebSocket agent turn"


def report(count: int, samples: dict[str, list[float]], idle_rss: float, busy_rss: float) -> None:
    stats = {name: summary(values) for name, values in samples.items()}
    rows = [
        (name, f"{s['p50_us'] / 1000:.3f}", f"{s['p95_us'] / 1000:.3f}")
        for name, s in stats.items()
    ]
    title = f"end-to-end latency, {count} sequential calls each, interleaved"
    print_table(title, rows, ("path", "p50 ms", "p95 ms"))
    ratio = stats[SEND]["p50_us"] / stats[BARE]["p50_us"]
    console.print(f"HTTP send p50 / bare starlette p50 = {ratio:.2f}x (target <= 3x)")
    turn_p50 = stats[TURN]["p50_us"] / 1000
    console.print(f"WebSocket turn p50 = {turn_p50:.3f} ms (target < 1 ms)")
    console.print(
        f"gateway RSS: idle {idle_rss:.1f} MiB (target < 80 MB), after {busy_rss:.1f} MiB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("SESSIONGATE_STATE_DIR", tempfile.mkdtemp(prefix="sg-bench-"))
    asyncio.run(measure(args.count, args.rounds))
