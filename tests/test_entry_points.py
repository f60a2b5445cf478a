"""Every entry point that addresses a session refuses the incident key under a strict config.

The registries are enumerated, so a new tool, WebSocket method, HTTP route or
MCP method that addresses a session fails this test until it is added here —
and proven to go through the resolver.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from mcp.shared.exceptions import MCPError
from starlette.routing import Route
from websockets.asyncio.client import connect

from sessiongate.config import SessionGateConfig
from sessiongate.mcp_bridge import gateway_client
from sessiongate.server.http import http_routes
from sessiongate.server.mcp import build_mcp_server, transcript_uri
from sessiongate.server.ws import METHODS
from sessiongate.tools import TOOLS

from .conftest import INCIDENT_KEY

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]
Probe = Callable[[Any, httpx.AsyncClient], Awaitable[dict[str, Any]]]

CALLER = "agent:peggy:main"


def tool_probe(tool: str, args: dict[str, Any]) -> Probe:
    async def probe(gw: Any, http: httpx.AsyncClient) -> dict[str, Any]:
        body = {"tool": tool, "args": args, "sessionKey": CALLER}
        response = await http.post("/tools/invoke", json=body)
        return {"status": response.status_code, **response.json()}

    return probe


def ws_probe(method: str, params: dict[str, Any]) -> Probe:
    async def probe(gw: Any, http: httpx.AsyncClient) -> dict[str, Any]:
        async with connect(gw.ws_url) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "req",
                        "id": 0,
                        "method": "connect",
                        "params": {"token": gw.token, "sessionKey": CALLER},
                    }
                )
            )
            assert json.loads(await ws.recv())["ok"]
            frame = {"type": "req", "id": 1, "method": method, "params": params}
            await ws.send(json.dumps(frame))
            answer = json.loads(await ws.recv())
        return {"status": 404 if not answer["ok"] else 200, **answer}

    return probe


def http_probe(path: str) -> Probe:
    async def probe(gw: Any, http: httpx.AsyncClient) -> dict[str, Any]:
        response = await http.get(path, headers={"x-session-key": CALLER})
        return {"status": response.status_code, **response.json()}

    return probe


def mcp_tool_probe(tool: str, args: dict[str, Any], caller: str = CALLER) -> Probe:
    async def probe(gw: Any, http: httpx.AsyncClient) -> dict[str, Any]:
        async with gateway_client(gw.url, gw.token, caller) as client:
            result = await client.call_tool(tool, args)
        return {"status": 404 if result.is_error else 200, **(result.structured_content or {})}

    return probe


def mcp_resource_probe(uri: str) -> Probe:
    async def probe(gw: Any, http: httpx.AsyncClient) -> dict[str, Any]:
        async with gateway_client(gw.url, gw.token, CALLER) as client:
            try:
                await client.read_resource(uri)
            except MCPError as exc:
                return {"status": 404, **exc.data}
        return {"status": 200}

    return probe


SEND = {"sessionKey": INCIDENT_KEY, "message": "hi"}
TOOL_PROBES: dict[str, list[Probe]] = {
    "sessions_send": [
        tool_probe("sessions_send", SEND),
        tool_probe("sessions_send", {**SEND, "createOnMiss": True}),
    ],
    "sessions_spawn": [
        tool_probe("sessions_spawn", {"agentId": "atlas", "task": "t", "sessionKey": INCIDENT_KEY}),
        tool_probe(
            "sessions_spawn", {"agentId": "atlas", "task": "t", "parentSessionKey": INCIDENT_KEY}
        ),
    ],
    "sessions_history": [tool_probe("sessions_history", {"sessionKey": INCIDENT_KEY})],
}
WS_PROBES: dict[str, list[Probe]] = {
    "agent": [ws_probe("agent", SEND)],
    "sessions.history": [ws_probe("sessions.history", {"sessionKey": INCIDENT_KEY})],
    "sessions.resolve": [ws_probe("sessions.resolve", {"sessionKey": INCIDENT_KEY})],
    "sessions.subscribe": [ws_probe("sessions.subscribe", {"sessionKey": INCIDENT_KEY})],
    "tools.invoke": [ws_probe("tools.invoke", {"tool": "sessions_send", "args": SEND})],
}
HTTP_PROBES: dict[str, list[Probe]] = {
    "/tools/invoke": TOOL_PROBES["sessions_send"],
    "/v1/sessions/{key:path}": [http_probe(f"/v1/sessions/{INCIDENT_KEY}")],
    "/v1/sessions/{key:path}/messages": [http_probe(f"/v1/sessions/{INCIDENT_KEY}/messages")],
}
MCP_TOOL_PROBES: dict[str, list[Probe]] = {
    "sessions_send": [mcp_tool_probe("sessions_send", SEND)],
    "sessions_spawn": [
        mcp_tool_probe(
            "sessions_spawn", {"agentId": "atlas", "task": "t", "sessionKey": INCIDENT_KEY}
        ),
        mcp_tool_probe(
            "sessions_spawn", {"agentId": "atlas", "task": "t", "parentSessionKey": INCIDENT_KEY}
        ),
    ],
    "sessions_history": [mcp_tool_probe("sessions_history", {"sessionKey": INCIDENT_KEY})],
}
MCP_PROBES: dict[str, list[Probe]] = {
    "tools/call": [
        *(p for ps in MCP_TOOL_PROBES.values() for p in ps),
        mcp_tool_probe("sessions_list", {}, caller=INCIDENT_KEY),  # the X-Session-Key header
    ],
    "resources/read": [mcp_resource_probe(transcript_uri(INCIDENT_KEY))],
}
# Routes that take no session address, or create from a message's own origin by design.
HTTP_EXEMPT = {"/v1/sessions", "/healthz", "/readyz", "/metrics", "/v1/channels/{channel}/inbound"}
WS_EXEMPT = {"sessions.list", "sessions.unsubscribe"}  # no address / only drops a subscription
# MCP methods without an address (listing honours the caller's visibility; tested in test_mcp).
MCP_EXEMPT = {"ping", "server/discover", "tools/list", "resources/list", "resources/templates/list"}


def test_every_addressing_entry_point_has_a_probe() -> None:
    addressing_tools = {name for name, spec in TOOLS.items() if spec.addresses_session}
    assert addressing_tools == set(TOOL_PROBES) == set(MCP_TOOL_PROBES)
    assert set(METHODS) - WS_EXEMPT == set(WS_PROBES)
    paths = {r.path for r in http_routes() if isinstance(r, Route)}
    assert paths - HTTP_EXEMPT == set(HTTP_PROBES)


async def test_every_addressing_mcp_method_has_a_probe(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        served = set(build_mcp_server(gw.gateway)._request_handlers)
    assert served - MCP_EXEMPT == set(MCP_PROBES)


async def test_each_entry_point_refuses_the_incident_key_and_creates_nothing(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    probes = [
        p
        for table in (TOOL_PROBES, WS_PROBES, HTTP_PROBES, MCP_PROBES)
        for ps in table.values()
        for p in ps
    ]
    async with serve(config) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            for probe in probes:
                answer = await probe(gw, http)
                assert answer["status"] == 404, answer
                assert answer["error"]["code"] == "SESSION_NOT_FOUND", answer
                assert answer["error"]["details"]["canonicalKey"] == INCIDENT_KEY
            assert await gw.gateway.store.count_sessions() == 2
            runs = await gw.gateway.store.history("agent:atlas:main")
            assert runs == []
