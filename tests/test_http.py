"""The real server on a free loopback port, driven over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sessiongate.config import SessionGateConfig
from tests.helpers import INCIDENT_KEY, auth, client_for, invoke, session_keys, wait_for_messages

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]


async def test_strict_incident_replay_refuses_and_creates_nothing(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, client_for(gw) as http:
        before = await session_keys(http)
        response = await invoke(
            http, "sessions_send", {"sessionKey": INCIDENT_KEY, "message": "hi"}, "agent:peggy:main"
        )
        assert response.status_code == 404
        error = response.json()["error"]
        assert response.json()["ok"] is False
        assert error["code"] == "SESSION_NOT_FOUND"
        assert error["type"] == "SessionNotFoundError"
        assert error["retryable"] is False
        assert error["details"]["requestedKey"] == INCIDENT_KEY
        assert error["details"]["canonicalKey"] == INCIDENT_KEY
        assert error["details"]["suggestions"] == ["agent:atlas:main"]
        assert error["details"]["policy"] == "gateway.sessions.createOnMiss=false"
        assert await session_keys(http) == before
        assert sorted(before) == ["agent:atlas:main", "agent:peggy:main"]
        history = await http.get("/v1/sessions/agent:atlas:main/messages")
        assert history.json()["result"]["messages"] == []


async def test_permissive_incident_replay_creates_the_phantom(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        response = await invoke(
            http, "sessions_send", {"sessionKey": INCIDENT_KEY, "message": "hi"}, "agent:peggy:main"
        )
        assert response.status_code == 200
        result = response.json()["result"]
        assert (result["status"], result["reply"]) == ("ok", "echo: hi")
        assert "dmScope=main" in result["warnings"][0]
        assert INCIDENT_KEY in await session_keys(http)
        shown = (await http.get(f"/v1/sessions/{INCIDENT_KEY}")).json()["result"]
        assert shown["origin"] == "address"
        assert shown["provenance"]["callerSessionKey"] == "agent:peggy:main"


async def test_case_variants_reach_the_existing_session(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, client_for(gw) as http:
        for variant in ("AGENT:ATLAS:MAIN", "  Agent:Atlas:Main ", "main"):
            response = await invoke(http, "sessions_send", {"sessionKey": variant, "message": "x"})
            assert response.status_code == 200, response.text
            assert response.json()["result"]["sessionKey"] == "agent:atlas:main"
        shown = await http.get("/v1/sessions/AGENT:ATLAS:MAIN")
        assert shown.json()["result"]["key"] == "agent:atlas:main"
        assert len(await session_keys(http)) == 2


async def test_requests_without_a_valid_token_get_401(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        for headers in ({}, auth("wrong-token"), {"authorization": "Basic abc"}):
            response = await http.get("/v1/sessions", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "UNAUTHORIZED"
        unauthorised = await http.post("/tools/invoke", json={"tool": "sessions_list"})
        assert unauthorised.status_code == 401
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "INVALID_REQUEST"),
        (b"[1, 2]", 400, "INVALID_REQUEST"),
        (b'{"tool": "no_such_tool", "args": {}}', 404, None),
        (b'{"tool": "sessions_send", "args": {"sessionKey": 5, "message": "x"}}', 400, None),
        (b'{"tool": "sessions_send", "args": {"sessionKey": "main"}}', 400, "INVALID_REQUEST"),
        (b'{"tool": "sessions_send", "args": "main"}', 400, "INVALID_REQUEST"),
        (b'{"tool": "sessions_history", "args": {"sessionKey": "agent::x"}}', 400, None),
        (b'{"tool": "sessions_list", "args": {"limit": "ten"}}', 400, "INVALID_REQUEST"),
        (b'{"tool": "sessions_list", "args": {}, "extra": 1}', 400, "INVALID_REQUEST"),
    ],
)
async def test_bad_bodies_get_structured_4xx_errors(
    serve: Serve, config_factory: ConfigFactory, body: bytes, status: int, code: str | None
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        before = await session_keys(http)
        response = await http.post("/tools/invoke", content=body)
        assert 400 <= response.status_code < 500, response.text
        if code is not None:
            assert response.status_code == status
        error = response.json()["error"]
        assert error["code"] == code or code is None
        assert error["message"]
        assert await session_keys(http) == before


async def test_unknown_tools_and_oversized_bodies(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__maxBodyBytes=2048)
    async with serve(config) as gw, client_for(gw) as http:
        unknown = await invoke(http, "rm_rf", {})
        assert unknown.json()["error"]["code"] in ("TOOL_NOT_FOUND", "FORBIDDEN")
        assert "rm_rf" in unknown.json()["error"]["message"]
        big = await invoke(http, "sessions_send", {"sessionKey": "main", "message": "x" * 5000})
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        missing_route = await http.get("/v2/nothing")
        assert missing_route.status_code == 404
        assert missing_route.json()["error"]["code"] == "ROUTE_NOT_FOUND"


async def test_tools_allow_limits_http_callers(serve: Serve, config_factory: ConfigFactory) -> None:
    config = config_factory(gateway__tools={"allow": ["sessions_list"]})
    async with serve(config) as gw, client_for(gw) as http:
        denied = await invoke(http, "sessions_send", {"sessionKey": "main", "message": "x"})
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "FORBIDDEN"
        assert (await invoke(http, "sessions_list", {})).status_code == 200


async def test_spawn_creates_a_fresh_child_and_runs_it(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, client_for(gw) as http:
        spawned = await invoke(
            http,
            "sessions_spawn",
            {"agentId": "peggy", "task": "count", "label": "counter"},
            "agent:atlas:main",
        )
        assert spawned.status_code == 200, spawned.text
        result = spawned.json()["result"]
        assert result["status"] == "accepted"
        child = result["childSessionKey"]
        assert child.startswith("agent:peggy:subagent:")
        messages = await wait_for_messages(http, child, 2)
        assert [m["content"] for m in messages] == ["count", "echo: count"]
        shown = (await http.get(f"/v1/sessions/{child}")).json()["result"]
        assert shown["provenance"]["parentSessionKey"] == "agent:atlas:main"
        assert shown["origin"] == "spawn"
        again = await invoke(http, "sessions_spawn", {"agentId": "peggy", "task": "count"})
        assert again.json()["result"]["childSessionKey"] != child
        bad_parent = await invoke(
            http,
            "sessions_spawn",
            {"agentId": "peggy", "task": "x", "parentSessionKey": "agent:atlas:cron:ghost"},
        )
        assert bad_parent.status_code == 404
        assert bad_parent.json()["error"]["details"]["requestedKey"] == "agent:atlas:cron:ghost"
        unknown_agent = await invoke(http, "sessions_spawn", {"agentId": "zed", "task": "x"})
        assert unknown_agent.json()["error"]["code"] == "AGENT_NOT_FOUND"


async def test_fire_and_forget_returns_accepted_then_the_run_completes(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        response = await invoke(
            http, "sessions_send", {"sessionKey": "main", "message": "later", "timeoutSeconds": 0}
        )
        result = response.json()["result"]
        assert result["status"] == "accepted" and result["runId"]
        assert "reply" not in result
        messages = await wait_for_messages(http, "agent:atlas:main", 2)
        assert messages[1]["content"] == "echo: later"
        assert messages[1]["runId"] == result["runId"]


async def test_fifty_concurrent_sends_to_one_session_keep_their_order(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        sends = [
            invoke(http, "sessions_send", {"sessionKey": "agent:peggy:main", "message": f"m{i}"})
            for i in range(50)
        ]
        results = [r.json()["result"] for r in await asyncio.gather(*sends)]
        assert all(r["status"] == "ok" for r in results)
        assert sorted(r["reply"] for r in results) == sorted(f"echo: m{i}" for i in range(50))
        messages = await wait_for_messages(http, "agent:peggy:main", 100)
        assert [m["seq"] for m in messages] == list(range(1, 101))
        inbound = [m["content"] for m in messages if m["role"] == "user"]
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        assert replies == [f"echo: {text}" for text in inbound]
        by_run = {m["runId"]: m["seq"] for m in messages if m["role"] == "user"}
        for reply in (m for m in messages if m["role"] == "assistant"):
            assert reply["seq"] > by_run[reply["runId"]]


async def test_health_ready_and_metrics(serve: Serve, config_factory: ConfigFactory) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        assert (await http.get("/healthz")).json()["status"] == "alive"
        ready = (await http.get("/readyz")).json()
        assert ready == {"ok": True, "status": "ready", "sessions": 2}
        await invoke(http, "sessions_send", {"sessionKey": "agent:atlas:cron:x", "message": "m"})
        metrics = (await http.get("/metrics")).text
        assert 'sessiongate_sessions_created_total{origin="address"} 1.0' in metrics
        assert "sessiongate_run_seconds_bucket" in metrics


async def test_history_paging_over_http(serve: Serve, config_factory: ConfigFactory) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        for i in range(3):
            await invoke(http, "sessions_send", {"sessionKey": "main", "message": f"m{i}"})
        page = await http.get("/v1/sessions/main/messages", params={"limit": 2, "before": 5})
        assert [m["seq"] for m in page.json()["result"]["messages"]] == [3, 4]
        bad = await http.get("/v1/sessions/main/messages", params={"limit": "lots"})
        assert bad.status_code == 400
        cursor = await http.get("/v1/sessions", params={"cursor": "bogus"})
        assert cursor.status_code == 400
