"""Hostile input, second round: each attack beside an honest client, with its figures.

Every attack runs against a gateway process of its own for a few seconds while an
honest client (127.0.0.1) sends one message every 50 ms; the figure is the honest
client's ok / total and median latency, and the gateway's RSS before and at its
peak. Attackers connect from other loopback addresses (127.0.0.2 and up).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks._common import TOKEN
from benchmarks.abuse._target import PeakMemory, Target, gateway

__all__ = ["ROUND2", "existence_probe", "run_round2"]

SIGNIN_FLOOD = b"%41=%42&" * 131_000  # ~1 MiB of form fields
UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
Attack = Callable[[Target, asyncio.Event], Awaitable[Counter[str]]]


def _from(source: str, url: str, **options: Any) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=url, transport=transport, **options)


async def _honest(target: Target, stop: asyncio.Event) -> list[float | None]:
    """One send every 50 ms until `stop`: each one's seconds, None for a failure."""
    results: list[float | None] = []
    body = {"tool": "sessions_send", "args": {"sessionKey": "main", "message": "honest"}}
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=5) as client:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                response = await client.post("/tools/invoke", json=body)
                ok = response.status_code == 200 and response.json()["ok"]
            except (httpx.HTTPError, ValueError):
                ok = False
            results.append(time.perf_counter() - start if ok else None)
            await asyncio.sleep(0.05)
    return results


async def _nothing(target: Target, stop: asyncio.Event) -> Counter[str]:
    """No attack: the honest client's figures on their own."""
    await stop.wait()
    return Counter()


def _signin_floods(attackers: int) -> Attack:
    async def attack(target: Target, stop: asyncio.Event) -> Counter[str]:
        floods = [_signin_flood(target, stop, f"127.0.0.{2 + a}") for a in range(attackers)]
        return sum(await asyncio.gather(*floods), Counter())

    return attack


async def _signin_flood(
    target: Target, stop: asyncio.Event, source: str = "127.0.0.2"
) -> Counter[str]:
    """Unauthenticated 1 MiB sign-in forms, as fast as answered."""
    seen: Counter[str] = Counter()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    async with _from(source, target.url, timeout=30) as client:
        while not stop.is_set():
            try:
                response = await client.post("/ui/signin", content=SIGNIN_FLOOD, headers=headers)
                seen[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                seen[type(exc).__name__] += 1
    return seen


async def _guessing(target: Target, stop: asyncio.Event) -> Counter[str]:
    """Wrong bearer tokens as fast as answered."""
    seen: Counter[str] = Counter()
    async with _from("127.0.0.2", target.url, timeout=30) as client:
        while not stop.is_set():
            headers = {"authorization": f"Bearer guess-{uuid.uuid4().hex}"}
            try:
                seen[str((await client.get("/v1/sessions", headers=headers)).status_code)] += 1
            except httpx.HTTPError as exc:
                seen[type(exc).__name__] += 1
    return seen


async def _hold(source: str, target: Target, opening: bytes, stop: asyncio.Event) -> str:
    """One connection that sends `opening` and then nothing, reopened when closed."""
    host, port = target.host_port
    outcome = "held"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.write(opening)
        stopped = asyncio.create_task(stop.wait())
        closed = asyncio.create_task(reader.read())
        await asyncio.wait({stopped, closed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        closed.cancel()
        writer.close()
        outcome = "reopened"
        await asyncio.sleep(0.05)
    return outcome


def _connection_flood(sources: int, each: int, opening: bytes) -> Attack:
    async def attack(target: Target, stop: asyncio.Event) -> Counter[str]:
        holders = [
            _hold(f"127.0.0.{2 + s}", target, opening, stop)
            for s in range(sources)
            for _ in range(each)
        ]
        return Counter(await asyncio.gather(*holders))

    return attack


SLOW_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
CAP = {"maxConnections": 200, "maxConnectionsPerClient": 100}

ROUND2: dict[str, tuple[Attack, dict[str, Any]]] = {
    "(no attack)": (_nothing, {}),
    "sign-in flood, 1 MiB forms (1 attacker)": (_signin_flood, {}),
    "sign-in flood, 1 MiB forms (4 attackers)": (_signin_floods(4), {}),
    "wrong bearer tokens (1 attacker)": (_guessing, {}),
    "slowloris, 4 addresses x 60 (cap 200)": (
        _connection_flood(4, 60, SLOW_HEADERS),
        {"gateway": {"limits": CAP}},
    ),
    "slowloris, 16 addresses x 15 (cap 200)": (
        _connection_flood(16, 15, SLOW_HEADERS),
        {"gateway": {"limits": CAP}},
    ),
    "idle WebSockets, 4 addresses x 60 (cap 200)": (
        _connection_flood(4, 60, UPGRADE.encode()),
        {"gateway": {"limits": {**CAP, "connectTimeoutSeconds": 60}}},
    ),
    "idle WebSockets, 16 addresses x 15 (cap 200)": (
        _connection_flood(16, 15, UPGRADE.encode()),
        {"gateway": {"limits": {**CAP, "connectTimeoutSeconds": 60}}},
    ),
}


async def _one(tmp: Path, attack: Attack, extra: dict[str, Any], seconds: float) -> dict[str, Any]:
    async with gateway(tmp, **extra) as target:
        rss_before = target.rss()
        stop = asyncio.Event()
        async with PeakMemory(target) as memory:
            attacking = asyncio.create_task(attack(target, stop))
            await asyncio.sleep(min(1.0, seconds / 4))  # let the attack take hold
            honest = asyncio.create_task(_honest(target, stop))
            await asyncio.sleep(seconds)
            stop.set()
            results = await honest
            with contextlib.suppress(Exception):
                outcomes = await asyncio.wait_for(attacking, 30)
        latencies = [r for r in results if r is not None]
        return {
            "honest_ok": len(latencies),
            "honest_total": len(results),
            "p50_ms": round(statistics.median(latencies) * 1e3, 1) if latencies else None,
            "rss_before_mib": round(rss_before, 1),
            "rss_peak_mib": round(memory.peak, 1),
            "attacker": dict(outcomes) if "outcomes" in locals() else {},
        }


async def existence_probe(tmp: Path, trials: int) -> dict[str, Any]:
    """A restricted caller (atlas, no agent-to-agent) addresses peggy's recently used
    session and a missing key of the same shape, 20 probes each, `trials` times: how often
    the median of the existing one is the faster (50% = no signal)."""
    config = {
        "tools": {"sessions": {"visibility": "agent"}, "agentToAgent": {"enabled": False}},
        "gateway": {"sessions": {"createOnMiss": False}},
    }
    async with gateway(tmp, **config) as target:
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=30) as client:
            spawn = {"tool": "sessions_spawn", "args": {"agentId": "peggy", "task": "t"}}
            spawned = await client.post("/tools/invoke", json=spawn)
            existing_key = spawned.json()["result"]["childSessionKey"]  # subagent:<uuid>
            warm = {"sessionKey": existing_key, "message": "seen recently"}
            await client.post("/tools/invoke", json={"tool": "sessions_send", "args": warm})

            async def probe(key: str) -> float:
                args = {"sessionKey": key, "message": "probe"}
                body = {"tool": "sessions_send", "args": args, "sessionKey": "agent:atlas:main"}
                start = time.perf_counter()
                response = await client.post("/tools/invoke", json=body)
                elapsed = time.perf_counter() - start
                assert response.status_code == 404, response.text
                return elapsed

            wins = 0
            for _ in range(trials):
                existing: list[float] = []
                missing: list[float] = []
                for _ in range(20):
                    existing.append(await probe(existing_key))
                    missing.append(await probe(f"agent:peggy:subagent:{uuid.uuid4()}"))
                wins += statistics.median(existing) < statistics.median(missing)
        return {"trials": trials, "existing_faster_pct": round(100 * wins / trials, 1)}


async def run_round2(tmp: Path, seconds: float) -> dict[str, dict[str, Any]]:
    """Every round-2 attack, one gateway each, with an honest client beside it."""
    results = {}
    for name, (attack, extra) in ROUND2.items():
        results[name] = await _one(tmp, attack, extra, seconds)
    return results
