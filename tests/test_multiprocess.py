"""Several gateway processes on one PostgreSQL; crashes; a database that goes away."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.client import connect

from sessiongate.config import SessionGateConfig
from sessiongate.store.postgres import split_schema
from tests.helpers import INCIDENT_KEY, GatewayProcess, aeventually, upstream
from tests.helpers import PROCESS_TOKEN as TOKEN

from .tcp_proxy import TcpProxy

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]


def gateway_config(url: str, tmp_path: Path, create_on_miss: Any, **extra: Any) -> dict[str, Any]:
    return {
        "gateway": {"sessions": {"createOnMiss": create_on_miss}},
        "storage": {"url": url},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        **extra,
    }


async def send_all(
    gateways: list[GatewayProcess], key: str, count: int, **args: Any
) -> list[httpx.Response]:
    """`count` concurrent sessions_send calls to `key`, alternating between the gateways."""
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        targets = itertools.cycle(gateways)

        async def send(i: int) -> httpx.Response:
            gw = next(targets)
            body = {"tool": "sessions_send",
                    "args": {"sessionKey": key, "message": f"m{i}", **args}}  # fmt: skip
            return await http.post(f"{gw.url}/tools/invoke", json=body, headers=gw.headers)

        return list(await asyncio.gather(*(send(i) for i in range(count))))


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    dsn, schema = split_schema(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_strict_race_between_two_processes_creates_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    config = gateway_config(postgres_url, tmp_path, False)
    with GatewayProcess(tmp_path, "a", config) as a, GatewayProcess(tmp_path, "b", config) as b:
        responses = await send_all([a, b], INCIDENT_KEY, 100)
    assert {r.status_code for r in responses} == {404}
    assert {r.json()["error"]["code"] for r in responses} == {"SESSION_NOT_FOUND"}
    rows = await query(postgres_url, "SELECT key FROM sessions ORDER BY key")
    assert [r["key"] for r in rows] == ["agent:atlas:main", "agent:peggy:main"]
    assert await query(postgres_url, "SELECT * FROM messages") == []


async def test_permissive_race_creates_one_session_and_keeps_every_message(
    postgres_url: str, tmp_path: Path
) -> None:
    config = gateway_config(postgres_url, tmp_path, True)
    with GatewayProcess(tmp_path, "a", config) as a, GatewayProcess(tmp_path, "b", config) as b:
        responses = await send_all([a, b], INCIDENT_KEY, 100)
        assert {r.status_code for r in responses} == {200}
        acknowledged = {r.json()["result"]["runId"] for r in responses}
    created = await query(postgres_url, "SELECT key FROM sessions WHERE origin = 'address'")
    assert [r["key"] for r in created] == [INCIDENT_KEY]
    messages = await query(
        postgres_url, "SELECT seq, role, run_id FROM messages WHERE session_key = $1 ORDER BY seq",
        INCIDENT_KEY,
    )  # fmt: skip
    assert [m["seq"] for m in messages] == list(range(1, 201))
    assert {m["run_id"] for m in messages if m["role"] == "user"} == acknowledged
    owners = await query(postgres_url, "SELECT DISTINCT owner FROM runs")
    assert len(owners) == 2  # both processes ran some of the runs


class ConcurrencyProbe:
    """A webhook agent that records how many runs of one session overlap."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.active: dict[str, int] = {}
        self.most = 0
        self.calls = 0
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> JSONResponse:
        key = (await request.json())["sessionKey"]
        self.active[key] = self.active.get(key, 0) + 1
        self.most = max(self.most, self.active[key])
        self.calls += 1
        await asyncio.sleep(self.delay)
        self.active[key] -= 1
        return JSONResponse({"reply": "ok"})

    def running(self, key: str) -> Callable[[], Awaitable[bool]]:
        """A condition for `aeventually`: a run of `key` is inside the webhook now."""

        async def check() -> bool:
            return self.active.get(key, 0) > 0

        return check


def webhook_agents(url: str) -> dict[str, Any]:
    return {"agents": {"list": [
        {"id": "atlas", "default": True},
        {"id": "slow", "model": "webhook", "webhook": {"url": f"{url}/hook"}},
    ]}}  # fmt: skip


async def test_runs_of_one_session_never_overlap_across_processes(
    postgres_url: str, tmp_path: Path
) -> None:
    probe = ConcurrencyProbe(0.02)
    async with upstream(probe.app) as fake:
        config = gateway_config(postgres_url, tmp_path, True, **webhook_agents(fake.url))
        a, b = GatewayProcess(tmp_path, "a", config), GatewayProcess(tmp_path, "b", config)
        with a, b:
            responses = await send_all([a, b], "agent:slow:main", 20)
    assert [r.json()["result"]["status"] for r in responses] == ["ok"] * 20
    assert probe.calls == 20
    assert probe.most == 1


async def test_kill_9_loses_nothing_acknowledged_and_peers_mark_its_runs(
    postgres_url: str, tmp_path: Path
) -> None:
    probe = ConcurrencyProbe(0.5)
    async with upstream(probe.app) as fake:
        config = gateway_config(postgres_url, tmp_path, True, **webhook_agents(fake.url))
        a, b = GatewayProcess(tmp_path, "a", config), GatewayProcess(tmp_path, "b", config)
        with a, b:
            fast = await send_all([a], "agent:atlas:main", 30)
            slow = await send_all([a], "agent:slow:main", 5, timeoutSeconds=0)
            acknowledged = {r.json()["result"]["runId"] for r in fast + slow}
            await aeventually(probe.running("agent:slow:main"), what="a slow run executing")
            a.kill()
            stored = await query(postgres_url, "SELECT run_id FROM messages WHERE role = 'user'")
            assert acknowledged <= {r["run_id"] for r in stored}

            async def interrupted() -> bool:
                rows = await query(postgres_url, "SELECT status FROM runs WHERE session_key = $1",
                                   "agent:slow:main")  # fmt: skip
                return {r["status"] for r in rows} <= {"completed", "interrupted"}

            await aeventually(interrupted, timeout=15, what="the killed process's runs marked")
            statuses = await query(postgres_url, "SELECT status, count(*) FROM runs GROUP BY 1")
            assert dict(statuses).get("interrupted", 0) >= 4  # type: ignore[arg-type]
            served = await send_all([b], "agent:atlas:main", 1)
            assert served[0].json()["result"]["reply"] == "echo: m0"
            a.start()
            again = await send_all([a], "agent:atlas:main", 1)
            assert again[0].json()["result"]["status"] == "ok"
    await assert_transcripts_whole(postgres_url)


async def assert_transcripts_whole(url: str) -> None:
    sessions = await query(url, "SELECT key, last_seq FROM sessions")
    for session in sessions:
        seqs = await query(url, "SELECT seq FROM messages WHERE session_key = $1 ORDER BY seq",
                           session["key"])  # fmt: skip
        assert [r["seq"] for r in seqs] == list(range(1, session["last_seq"] + 1))


async def test_kill_9_on_sqlite_then_restart_marks_runs_interrupted(tmp_path: Path) -> None:
    probe = ConcurrencyProbe(0.5)
    db = tmp_path / "state.db"
    async with upstream(probe.app) as fake:
        config = gateway_config(f"sqlite:///{db}", tmp_path, True, **webhook_agents(fake.url))
        a = GatewayProcess(tmp_path, "a", config)
        with a:
            fast = await send_all([a], "agent:atlas:main", 20)
            slow = await send_all([a], "agent:slow:main", 3, timeoutSeconds=0)
            await aeventually(probe.running("agent:slow:main"), what="a slow run executing")
            a.kill()
            a.start()
            async with httpx.AsyncClient(base_url=a.url, headers=a.headers) as http:
                history = (await http.get("/v1/sessions/agent:slow:main/messages")).json()
                main = (await http.get("/v1/sessions/agent:atlas:main/messages?limit=100")).json()
    acked_slow = {r.json()["result"]["runId"] for r in slow}
    assert acked_slow <= {m["runId"] for m in history["result"]["messages"]}
    acked_fast = {r.json()["result"]["runId"] for r in fast}
    assert acked_fast <= {m["runId"] for m in main["result"]["messages"]}
    with sqlite3.connect(db) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
    assert "running" not in statuses
    assert statuses.get("interrupted", 0) >= 2


async def test_an_unreachable_database_fails_fast_and_recovers(
    postgres_url: str, serve: Serve, config_factory: ConfigFactory
) -> None:
    dsn, _ = split_schema(postgres_url)
    host_port = dsn.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = await TcpProxy(host, int(port)).start()
    proxied = postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    config = config_factory(storage={"url": proxied})
    async with serve(config) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as http:
            body = {"tool": "sessions_send", "args": {"sessionKey": "main", "message": "x"}}
            assert (await http.post("/tools/invoke", json=body)).status_code == 200
            await proxy.cut()
            down = await http.post("/tools/invoke", json=body)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "STORE_UNAVAILABLE"
            assert down.json()["error"]["retryable"] is True
            assert (await http.get("/readyz")).status_code == 503
            await proxy.restore()

            async def recovered() -> bool:
                response = await http.post("/tools/invoke", json=body)
                return response.status_code == 200

            await aeventually(recovered, timeout=15, what="the database answering again")
            assert (await http.get("/readyz")).status_code == 200
    await proxy.close()


__all__ = ["TOKEN"]


async def test_websocket_subscribers_see_runs_of_other_processes(
    postgres_url: str, tmp_path: Path
) -> None:
    config = gateway_config(postgres_url, tmp_path, False)
    with GatewayProcess(tmp_path, "a", config) as a, GatewayProcess(tmp_path, "b", config) as b:
        async with connect(b.url.replace("http", "ws") + "/ws") as ws:
            await ws.send(json.dumps({"type": "req", "id": 0, "method": "connect",
                                      "params": {"token": TOKEN}}))  # fmt: skip
            assert json.loads(await ws.recv())["ok"]
            await ws.send(json.dumps({"type": "req", "id": 1, "method": "sessions.subscribe",
                                      "params": {"sessionKey": "agent:atlas:main"}}))  # fmt: skip
            assert json.loads(await ws.recv())["ok"]
            sent = await send_all([a], "agent:atlas:main", 1)
            run_id = sent[0].json()["result"]["runId"]
            frames = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(3)]
    assert [f["event"] for f in frames] == ["run.started", "run.delta", "run.completed"]
    assert {f["payload"]["runId"] for f in frames} == {run_id}
    assert frames[-1]["payload"]["reply"] == "echo: m0"


async def test_storage_migrate_copies_sqlite_into_postgres(
    postgres_url: str, tmp_path: Path, serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory()
    async with (
        serve(config) as gw,
        httpx.AsyncClient(base_url=gw.url, headers={"authorization": f"Bearer {gw.token}"}) as http,
    ):
        for key in ("agent:atlas:main", INCIDENT_KEY, "agent:peggy:cron:daily"):
            body = {"tool": "sessions_send", "args": {"sessionKey": key, "message": "hi"}}
            assert (await http.post("/tools/invoke", json=body)).status_code == 200
        deleted = await http.request("DELETE", "/v1/sessions/agent:peggy:cron:daily")
        assert deleted.status_code == 200  # its tombstone travels with the store
    source = config.storage_url
    command = [sys.executable, "-m", "sessiongate", "storage", "migrate", "--from", source,
               "--to", postgres_url, "--json"]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["result"] == {
        "sessions": 3, "copied": 3, "skipped": 0, "messages": 4, "tombstones": 1,
    }  # fmt: skip
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["result"]["skipped"] == 3
    rows = await query(postgres_url, "SELECT key, origin, last_seq FROM sessions ORDER BY id")
    assert [r["key"] for r in rows] == ["agent:atlas:main", "agent:peggy:main", INCIDENT_KEY]
    tombstones = await query(postgres_url, "SELECT key, deleted_by FROM tombstones")
    assert [(r["key"], r["deleted_by"]) for r in tombstones] == [
        ("agent:peggy:cron:daily", "operator via http")
    ]
    assert dict((r["key"], r["origin"]) for r in rows)[INCIDENT_KEY] == "address"
    await assert_transcripts_whole(postgres_url)
    bad = subprocess.run([*command[:6], "mysql://x", *command[7:]], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a store URL" in bad.stdout
