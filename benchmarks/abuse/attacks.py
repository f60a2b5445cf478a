"""The attacks: each against a fresh gateway, each returning its figures."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks._common import TOKEN
from benchmarks.abuse._target import PeakMemory, Target, gateway, legitimate_sends

SLOW_SOURCE = "127.0.0.2"  # the attacker's address (loopback has all of 127/8)
IDLE_SOURCE = "127.0.0.3"
UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def _hold(target: Target, source: str, opening: bytes, drip: bytes | None) -> str:
    """One attacker connection: send `opening`, then `drip` every 2 s, until the server
    closes it. Returns how it ended."""
    host, port = target.host_port
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    except OSError:
        return "connect_failed"
    try:
        writer.write(opening)
        while True:
            try:
                async with asyncio.timeout(2):
                    data = await reader.read(65536)
            except TimeoutError:
                if drip is not None:
                    writer.write(drip)
                continue
            if not data:
                return "closed"
            if data.startswith(b"HTTP/1.1 503"):
                return "refused_503"
    except (ConnectionError, OSError):
        return "closed"
    finally:
        writer.close()


async def _attacker(
    target: Target, source: str, opening: bytes, drip: bytes | None, stop: asyncio.Event
) -> Counter[str]:
    """Keep one connection open: reconnect whenever the server ends it."""
    ended: Counter[str] = Counter()
    while not stop.is_set():
        hold = asyncio.create_task(_hold(target, source, opening, drip))
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({hold, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if hold not in done:
            hold.cancel()
            stopped.cancel()
            break
        stopped.cancel()
        ended[hold.result()] += 1
        await asyncio.sleep(0.05)
    return ended


async def slowloris_and_idle(
    tmp: Path, budgets: bool, seconds: float, slow: int, idle: int, nofile: int
) -> dict[str, Any]:
    """`slow` slowloris connections and `idle` WebSockets that never `connect`, reopened as
    soon as they are closed, under a lowered fd limit; a legitimate client sends meanwhile."""
    async with gateway(tmp, budgets=budgets, nofile=nofile) as target:
        stop = asyncio.Event()
        slow_line = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        attackers = [
            _attacker(target, SLOW_SOURCE, slow_line, b"X-a: b\r\n", stop) for _ in range(slow)
        ]
        attackers += [
            _attacker(target, IDLE_SOURCE, UPGRADE.encode(), None, stop) for _ in range(idle)
        ]
        attack = asyncio.gather(*attackers)
        await asyncio.sleep(min(3.0, seconds / 4))  # let the attack take hold first
        async with PeakMemory(target) as memory:
            legit = asyncio.create_task(legitimate_sends(target, stop))
            await asyncio.sleep(seconds)
            fds = target.open_fds()
            stop.set()
            ok, failed = await legit
        ended = sum((await attack), Counter())
        return {
            "budgets": budgets,
            "attack_connections": slow + idle,
            "legit_ok": ok,
            "legit_failed": failed,
            "attacker_closed_by_server": ended["closed"],
            "attacker_refused_503": ended["refused_503"],
            "attacker_connect_failed": ended["connect_failed"],
            "server_fds_during_attack": fds,
            "shed": await target.shed(),
            "peak_rss_mib": round(memory.peak, 1),
        }


async def _seed_history(target: Target, messages: int, size: int) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        for i in range(messages):
            args = {"sessionKey": "main", "message": f"{i} " + "x" * size}
            await client.post(
                f"{target.url}/tools/invoke", json={"tool": "sessions_send", "args": args}
            )


async def _connected(target: Target, **options: Any) -> ClientConnection:
    ws = await connect(target.ws_url, max_size=None, **options)
    await ws.send(
        json.dumps({"type": "req", "id": 0, "method": "connect", "params": {"token": TOKEN}})
    )
    answer = json.loads(await ws.recv())
    assert answer["ok"], answer
    return ws


def _history_frames(count: int) -> list[str]:
    frame = {"type": "req", "method": "sessions.history", "params": {"sessionKey": "main"}}
    return [json.dumps({**frame, "id": i}) for i in range(count)]


async def _flood_unread(target: Target, requests: int, seconds: float) -> str:
    """Pipeline `requests` history reads and never read an answer; how the connection ended."""
    ws = await _connected(target, max_queue=1)
    try:
        async with asyncio.timeout(seconds):
            for text in _history_frames(requests):
                await ws.send(text)
            await ws.wait_closed()
    except TimeoutError:
        return "still open"
    except ConnectionClosed:
        pass
    finally:
        ws.transport.abort()
    return f"closed {ws.close_code} {ws.close_reason}".strip()


async def _flood_reading(target: Target, requests: int) -> Counter[str]:
    """Pipeline `requests` history reads and read every answer: how many of each outcome."""
    ws = await _connected(target)
    outcomes: Counter[str] = Counter()

    async def send_all() -> None:
        for text in _history_frames(requests):
            await ws.send(text)

    sender = asyncio.create_task(send_all())
    try:
        while sum(outcomes.values()) < requests:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "res":
                outcomes["ok" if frame["ok"] else frame["error"]["code"]] += 1
    except ConnectionClosed as closed:
        outcomes[f"closed {closed.rcvd.code if closed.rcvd else ''}"] += 1
    await sender
    await ws.close()
    return outcomes


async def pipelining_flood(
    tmp: Path, budgets: bool, requests: int, seconds: float
) -> dict[str, Any]:
    """One authenticated client pipelines history reads (about 300 KB each): never reading,
    then reading; a legitimate client sends meanwhile."""
    async with gateway(tmp, budgets=budgets) as target:
        await _seed_history(target, 25, 6000)
        await asyncio.sleep(1)
        idle = target.rss()
        stop = asyncio.Event()
        legit = asyncio.create_task(legitimate_sends(target, stop))
        async with PeakMemory(target) as unread_peak:
            unread = await _flood_unread(target, requests, seconds)
        async with PeakMemory(target) as reading_peak:
            reading = await _flood_reading(target, requests)
        stop.set()
        ok, failed = await legit
        return {
            "budgets": budgets,
            "requests": requests,
            "idle_rss_mib": round(idle, 1),
            "never_reads_peak_rss_mib": round(unread_peak.peak, 1),
            "never_reads_connection": unread,
            "reads_peak_rss_mib": round(reading_peak.peak, 1),
            "reads_outcomes": dict(reading),
            "legit_ok": ok,
            "legit_failed": failed,
        }


async def _spawn_chain(client: httpx.AsyncClient, root: str, depth: int) -> list[str]:
    chain = [root]
    for _ in range(depth):
        args = {"agentId": "atlas", "task": "t", "parentSessionKey": chain[-1]}
        response = await client.post("/tools/invoke", json={"tool": "sessions_spawn", "args": args})
        chain.append(response.json()["result"]["childSessionKey"])
    return chain


async def _refusal_seconds(client: httpx.AsyncClient, key: str) -> float:
    start = time.perf_counter()
    response = await client.get(f"/v1/sessions/{key}", headers={"x-session-key": "main"})
    elapsed = time.perf_counter() - start
    assert response.status_code == 404, response.text
    return elapsed


async def deep_spawn_timing(tmp: Path, depth: int, rounds: int) -> dict[str, Any]:
    """Refusing a hidden session `depth` spawns deep against refusing a missing key
    (the three probes interleaved call by call, so load on the machine hits all alike)."""
    tools = {"sessions": {"visibility": "tree"}, "agentToAgent": {"enabled": False}}
    async with gateway(tmp, tools=tools) as target:
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=30) as client:
            args = {"sessionKey": "agent:atlas:cron:root", "message": "m", "createOnMiss": True}
            await client.post("/tools/invoke", json={"tool": "sessions_send", "args": args})
            chain = await _spawn_chain(client, "agent:atlas:cron:root", depth)
            probes = {
                "missing": f"agent:atlas:subagent:{uuid.uuid4()}",
                "shallow": chain[1],
                "deep": chain[-1],
            }
            samples: dict[str, list[float]] = {name: [] for name in probes}
            for _ in range(rounds * 5):
                for name, key in probes.items():
                    samples[name].append(await _refusal_seconds(client, key))
        median = {name: statistics.median(values) * 1e3 for name, values in samples.items()}
        return {
            "depth": depth,
            "missing_ms": round(median["missing"], 3),
            "hidden_depth_1_ms": round(median["shallow"], 3),
            f"hidden_depth_{depth}_ms": round(median["deep"], 3),
            "ratio_deep_to_missing": round(median["deep"] / median["missing"], 3),
        }


async def paging_probe(tmp: Path, hidden: int) -> dict[str, Any]:
    """A restricted caller pages with limit=1 through a store where most rows are hidden."""
    tools = {"sessions": {"visibility": "tree"}, "agentToAgent": {"enabled": False}}
    async with gateway(tmp, tools=tools) as target:
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=30) as client:
            for i in range(hidden):
                args = {"sessionKey": f"agent:atlas:cron:j{i}", "message": "m"}
                await client.post("/tools/invoke", json={"tool": "sessions_send", "args": args})
            pages = empty_with_cursor = raw_ids = 0
            cursor = None
            while True:
                params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
                response = await client.get(
                    "/v1/sessions", params=params, headers={"x-session-key": "main"}
                )
                result = response.json()["result"]
                pages += 1
                cursor = result["nextCursor"]
                empty_with_cursor += bool(cursor and not result["sessions"])
                raw_ids += bool(cursor and cursor.startswith("s") and "." not in cursor)
                if cursor is None:
                    break
        return {
            "hidden_rows": hidden,
            "pages": pages,
            "empty_pages_with_cursor": empty_with_cursor,
            "cursors_with_row_ids": raw_ids,
        }


def config_at_scale(tmp: Path, agents: int, rules: int) -> dict[str, Any]:
    """Validate a config with `agents` agents and `rules` rules, then open a gateway on it."""
    from sessiongate.config import parse_config
    from sessiongate.gateway import Gateway

    data = {
        "storage": {"url": f"sqlite:///{tmp / f'scale-{agents}.db'}"},
        "audit": {"path": str(tmp / "scale-audit.jsonl")},
        "gateway": {
            "sessions": {
                "rules": [
                    {"match": f"agent:a{i}:cron:*", "createOnMiss": False} for i in range(rules)
                ]
            }
        },
        "agents": {"list": [{"id": f"a{i}", "default": i == 0} for i in range(agents)]},
    }
    start = time.perf_counter()
    config = parse_config(data, "benchmark")
    validate = time.perf_counter() - start

    async def open_and_close() -> float:
        begin = time.perf_counter()
        opened = await Gateway.open(config)
        elapsed = time.perf_counter() - begin
        await opened.close()
        return elapsed

    first = asyncio.run(open_and_close())
    again = asyncio.run(open_and_close())
    return {
        "agents": agents,
        "rules": rules,
        "validate_s": round(validate, 3),
        "start_fresh_s": round(first, 3),
        "start_existing_s": round(again, 3),
    }
