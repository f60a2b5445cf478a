"""`/tools/invoke` with OpenClaw's request fields and, under gateway.compat.openclaw, its shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from sessiongate.config import SessionGateConfig
from tests.helpers import INCIDENT_KEY

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]


def compat(config_factory: ConfigFactory, **overrides: Any) -> SessionGateConfig:
    return config_factory(gateway__compat={"openclaw": True}, **overrides)


def client(gw: Any, token: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token or gw.token}"}
    return httpx.AsyncClient(base_url=gw.url, headers=headers)


async def invoke(http: httpx.AsyncClient, tool: str, args: Any, **body: Any) -> httpx.Response:
    return await http.post("/tools/invoke", json={"tool": tool, "args": args, **body})


async def guarded_send(http: httpx.AsyncClient, key: str, message: str) -> dict[str, Any]:
    """A caller-side send guard as written against OpenClaw: send only to a listed session."""
    listed = (await invoke(http, "sessions_list", {"limit": 200})).json()
    if key not in {row["key"] for row in listed["result"]["details"]["sessions"]}:
        return {"blocked": key}
    sent = (await invoke(http, "sessions_send", {"sessionKey": key, "message": message})).json()
    return dict(json.loads(sent["result"]["content"][0]["text"]))


async def test_openclaw_envelope_and_a_guard_script_written_for_openclaw(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(compat(config_factory)) as gw, client(gw) as http:
        assert await guarded_send(http, INCIDENT_KEY, "hi") == {"blocked": INCIDENT_KEY}
        sent = await guarded_send(http, "agent:atlas:main", "hi")
        assert sent["status"] == "ok" and sent["reply"] == "echo: hi"
        response = await invoke(http, "sessions_send", {"sessionKey": "main", "message": "x"})
        body = response.json()
        assert response.status_code == 200 and body["ok"] is True
        assert body["result"]["content"][0]["type"] == "text"
        details = body["result"]["details"]
        assert json.loads(body["result"]["content"][0]["text"]) == details
        assert {"runId", "status", "reply", "sessionKey"} <= set(details)
        assert await gw.gateway.store.count_sessions() == 2


async def test_openclaw_error_conventions(serve: Serve, config_factory: ConfigFactory) -> None:
    config = compat(config_factory, gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, client(gw) as http:
        unknown = await invoke(http, "browser", {})
        assert unknown.status_code == 404
        assert unknown.json()["ok"] is False
        assert unknown.json()["error"]["type"] == "not_found"
        assert "browser" in unknown.json()["error"]["message"]
        async with client(gw, "wrong-token") as intruder:
            denied = await invoke(intruder, "sessions_list", {})
        assert denied.status_code == 401
        assert denied.json() == {"error": {"message": "Unauthorized", "type": "unauthorized"}}
        refused = await invoke(http, "sessions_send", {"sessionKey": INCIDENT_KEY, "message": "x"})
        assert refused.status_code == 404
        error = refused.json()["error"]
        assert error["type"] == "not_found" and error["code"] == "SESSION_NOT_FOUND"
        assert error["details"]["requestedKey"] == INCIDENT_KEY
        assert error["details"]["suggestions"] == ["agent:atlas:main"]
        bad = await invoke(http, "sessions_send", {"sessionKey": "main"})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request"
        assert await gw.gateway.store.count_sessions() == 2


async def test_action_and_dry_run_fields(serve: Serve, config_factory: ConfigFactory) -> None:
    async with serve(config_factory()) as gw, client(gw) as http:
        send = {"sessionKey": INCIDENT_KEY, "message": "x"}
        dry = await invoke(http, "sessions_send", send, dryRun=True)
        assert dry.status_code == 200, dry.text
        assert dry.json()["result"]["dryRun"] is True
        assert dry.json()["result"]["args"]["sessionKey"] == INCIDENT_KEY
        invalid = await invoke(http, "sessions_send", {"message": "x"}, dryRun=True)
        assert invalid.status_code == 400
        action = await invoke(http, "sessions_list", {}, action="list")
        assert action.status_code == 400
        assert "takes no action" in action.json()["error"]["message"]
        assert await gw.gateway.store.count_sessions() == 2
        assert await gw.gateway.store.history("agent:atlas:main") == []


async def test_openclaw_sessions_list_and_history_arguments(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client(gw) as http:
        direct = "agent:peggy:direct:42"
        await invoke(http, "sessions_send", {"sessionKey": direct, "message": "hey"})

        async def keys(**args: Any) -> list[str]:
            response = await invoke(http, "sessions_list", args)
            assert response.status_code == 200, response.text
            return sorted(row["key"] for row in response.json()["result"]["sessions"])

        assert await keys(kinds=["main"]) == ["agent:atlas:main", "agent:peggy:main"]
        assert await keys(kinds=["other"]) == [direct]
        assert await keys(kinds=["group", "cron"]) == []
        assert len(await keys(activeMinutes=5)) == 3
        listed = await invoke(http, "sessions_list", {"kinds": ["other"], "messageLimit": 1})
        row = listed.json()["result"]["sessions"][0]
        assert [m["content"] for m in row["messages"]] == ["echo: hey"]
        history = await invoke(
            http, "sessions_history", {"sessionKey": direct, "includeTools": True}
        )
        assert [m["content"] for m in history.json()["result"]["messages"]] == ["hey", "echo: hey"]
        bad = await invoke(http, "sessions_list", {"kinds": ["global"]})
        assert bad.status_code == 400


async def test_idempotency_key_over_http(serve: Serve, config_factory: ConfigFactory) -> None:
    async with serve(config_factory()) as gw, client(gw) as http:
        args = {"sessionKey": "main", "message": "once", "idempotencyKey": "retry-1"}
        first = (await invoke(http, "sessions_send", args)).json()["result"]
        again = (await invoke(http, "sessions_send", args)).json()["result"]
        assert first["runId"] == again["runId"]
        assert again["duplicate"] is True and again["reply"] == first["reply"] == "echo: once"
        other = await invoke(http, "sessions_send", {**args, "idempotencyKey": "retry-2"})
        assert other.json()["result"]["runId"] != first["runId"]
        history = await gw.gateway.store.history("agent:atlas:main")
        assert [m.content for m in history if m.role == "user"] == ["once", "once"]
