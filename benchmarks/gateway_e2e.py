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
import tempfile
from dataclasses import dataclass
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
    uvicorn_command,
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


class HttpGetCaller(HttpCaller):
    """Sequential GET /v1/sessions/{key}: a resolver hit over HTTP, no run."""

    async def __call__(self, i: int) -> object:
        response = await self.http.get(f"/v1/sessions/{self.key}")
        assert response.status_code == self.expect, response.text
        return response


class WsCaller:
    """Sequential requests over one WebSocket: `agent` turns, or frames to a bare echo."""

    def __init__(self, ws: ClientConnection, method: str = "agent") -> None:
        self.ws = ws
        self.method = method
        self.next_id = 1

    async def __call__(self, i: int) -> object:
        self.next_id += 1
        params = {"sessionKey": "agent:peggy:main", "message": f"m{i}"}
        return await request(self.ws, self.next_id, self.method, params)


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
        await timed(caller, min(50, count))  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in callers}
    for _ in range(rounds):
        for name, caller in callers.items():
            samples[name] += await timed(caller, max(1, count // rounds))
    return samples


BARE = "bare starlette JSON endpoint"
SEND = "HTTP sessions_send (echo reply)"
HIT = "HTTP GET /v1/sessions/{key} (resolver hit)"
REJECT = "HTTP strict rejection (404)"
LLM = "HTTP sessions_send (LLM agent, instant fake model)"
RAW_WS = "bare WebSocket echo"
TURN = "WebSocket agent turn"


@dataclass
class EndToEnd:
    samples: dict[str, list[float]]
    idle_rss: float
    busy_rss: float

    def stats(self) -> dict[str, dict[str, float]]:
        return {name: summary(values) for name, values in self.samples.items()}

    def ratios(self) -> dict[str, float]:
        p50 = {name: s["p50_us"] for name, s in self.stats().items()}
        return {
            "http_send_vs_bare": p50[SEND] / p50[BARE],
            "ws_turn_vs_raw_ws": p50[TURN] / p50[RAW_WS],
            "reject_vs_hit": p50[REJECT] / p50[HIT],
            "llm_overhead_ms": (p50[LLM] - p50[SEND]) / 1000,
        }


def llm_agents(port: int) -> dict[str, Any]:
    return {
        "models": {"providers": {"fake": {"baseUrl": f"http://127.0.0.1:{port}/v1"}}},
        "agents": {"list": [{"id": "atlas", "default": True}, {"id": "peggy"},
                            {"id": "llm", "model": "fake/bench-model"}]},
    }  # fmt: skip


async def measure(count: int, rounds: int) -> EndToEnd:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bare_port, model_port, gw_port = free_port(), free_port(), free_port()
        bare_url, gw_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{gw_port}"
        gateway = gateway_command(tmp, gw_port, extra=llm_agents(model_port))
        with (
            process(uvicorn_command("benchmarks.bare_starlette:app", bare_port), bare_url),
            process(uvicorn_command("benchmarks.fake_openai:app", model_port),
                    f"http://127.0.0.1:{model_port}"),
            process(gateway, gw_url) as gw,
        ):  # fmt: skip
            await asyncio.sleep(1.0)
            idle_rss = rss_mib(gw.pid)
            async with (
                connect(f"ws://127.0.0.1:{gw_port}/ws") as ws,
                connect(f"ws://127.0.0.1:{bare_port}/ws") as raw,
            ):
                await request(ws, 0, "connect", {"token": TOKEN})
                callers = {
                    BARE: HttpCaller(bare_url, "agent:atlas:main", 200),
                    SEND: HttpCaller(gw_url, "agent:atlas:main", 200),
                    HIT: HttpGetCaller(gw_url, "agent:atlas:main", 200),
                    REJECT: HttpCaller(gw_url, MISSING, 404),
                    LLM: HttpCaller(gw_url, "agent:llm:main", 200),
                    RAW_WS: WsCaller(raw, "echo"),
                    TURN: WsCaller(ws),
                }
                samples = await interleaved(callers, count, rounds)
            busy_rss = rss_mib(gw.pid)
    return EndToEnd(samples, idle_rss, busy_rss)


def report(count: int, result: EndToEnd) -> None:
    rows = [
        (name, f"{s['p50_us'] / 1000:.3f}", f"{s['p95_us'] / 1000:.3f}")
        for name, s in result.stats().items()
    ]
    title = f"end-to-end latency, {count} sequential calls each, interleaved"
    print_table(title, rows, ("path", "p50 ms", "p95 ms"))
    r = result.ratios()
    console.print(f"HTTP send / bare starlette = {r['http_send_vs_bare']:.2f}x (target <= 3x)")
    console.print(
        f"WebSocket turn / bare WebSocket echo = {r['ws_turn_vs_raw_ws']:.2f}x (target <= 3x)"
    )
    console.print(f"strict rejection / resolver hit = {r['reject_vs_hit']:.2f}x (target <= 1x)")
    console.print(f"LLM turn overhead over echo = {r['llm_overhead_ms']:.3f} ms")
    console.print(f"gateway RSS: idle {result.idle_rss:.1f} MiB, after {result.busy_rss:.1f} MiB")


async def main(count: int, rounds: int) -> None:
    report(count, await measure(count, rounds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("SESSIONGATE_STATE_DIR", tempfile.mkdtemp(prefix="sg-bench-"))
    asyncio.run(main(args.count, args.rounds))
