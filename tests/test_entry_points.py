"""Every entry point that addresses a session refuses the incident key under a strict config.

The registries are enumerated, so a new tool, WebSocket method or HTTP route that
addresses a session fails this test until it is added here — and proven to go
through the resolver.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.routing import Route
from websockets.asyncio.client import connect

from sessiongate.config import SessionGateConfig
from sessiongate.server.http import http_routes
from sessiongate.server.ui import page_routes
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


def page_answer(response: httpx.Response) -> dict[str, Any]:
    """The refusal a page shows, read back from its data attributes."""
    found = re.search(r'data-code="([^"]*)" data-canonical-key="([^"]*)"', response.text)
    assert found, response.text[:2000]
    error = {"code": found[1], "details": {"canonicalKey": found[2]}}
    return {"status": response.status_code, "error": error}


def page_probe(path: str, form: dict[str, str] | None = None) -> Probe:
    """GET a control-page view, or (with `form`) post a form with the page's CSRF token."""

    async def probe(gw: Any, _: httpx.AsyncClient) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            await http.post("/ui/signin", data={"token": gw.token})  # the page's cookie
            if form is None:
                return page_answer(await http.get(path))
            page = (await http.get("/ui/send")).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf, page
            return page_answer(await http.post(path, data={**form, "csrf": csrf[1]}))

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
PAGE_FORM = {"caller": CALLER, "sessionKey": INCIDENT_KEY, "message": "hi"}
PAGE_PROBES: dict[str, list[Probe]] = {
    "/send": [
        page_probe("/ui/send", {**PAGE_FORM, "mustExist": "on"}),
        page_probe("/ui/send", PAGE_FORM),  # create-on-miss from the page, refused by config
    ],
    "/doctor/repair": [page_probe("/ui/doctor/repair", {"sessionKey": INCIDENT_KEY})],
    "/doctor/plan": [page_probe(f"/ui/doctor/plan?sessionKey={INCIDENT_KEY}")],
    "/sessions/{key:path}": [page_probe(f"/ui/sessions/{INCIDENT_KEY}")],
    "/messages": [page_probe(f"/ui/messages?key={INCIDENT_KEY}")],
}
# Views that take no session address; signing in and out.
PAGE_EXEMPT = {"/", "/signin", "/signout", "/sessions", "/audit", "/doctor", "/static/{name}"}
# Routes that take no session address, or create from a message's own origin by design.
HTTP_EXEMPT = {"/v1/sessions", "/healthz", "/readyz", "/metrics", "/v1/channels/{channel}/inbound"}
# no address / only drops a subscription / streams the audit log
WS_EXEMPT = {"sessions.list", "sessions.unsubscribe", "audit.subscribe"}


def test_every_addressing_entry_point_has_a_probe() -> None:
    addressing_tools = {name for name, spec in TOOLS.items() if spec.addresses_session}
    assert addressing_tools == set(TOOL_PROBES)
    assert set(METHODS) - WS_EXEMPT == set(WS_PROBES)
    paths = {r.path for r in http_routes() if isinstance(r, Route)}
    assert paths - HTTP_EXEMPT == set(HTTP_PROBES)
    pages = {r.path for r in page_routes()}
    assert pages - PAGE_EXEMPT == set(PAGE_PROBES)


async def test_each_entry_point_refuses_the_incident_key_and_creates_nothing(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    probes = [
        p
        for table in (TOOL_PROBES, WS_PROBES, HTTP_PROBES, PAGE_PROBES)
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
