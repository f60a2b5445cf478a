"""The control page over plain HTTP: sign-in, CSRF, headers, assets, the cookie on /ws."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
from websockets.asyncio.client import connect

from sessiongate.config import SessionGateConfig
from tests.helpers import INCIDENT_KEY, sign_in

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]


async def test_root_redirects_and_views_need_sign_in(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        root = await http.get("/", headers={"accept": "text/html,application/xhtml+xml"})
        assert root.status_code == 303 and root.headers["location"] == "/ui/"
        not_a_browser = await http.get("/")
        assert not_a_browser.json()["error"]["code"] == "ROUTE_NOT_FOUND"
        view = await http.get("/ui/sessions?agent=atlas")
        assert view.status_code == 303
        assert view.headers["location"] == "/ui/signin?next=/ui/sessions%3Fagent%3Datlas"
        post = await http.post("/ui/send", data={"sessionKey": "main", "message": "x"})
        assert post.status_code == 401 and 'data-code="UNAUTHORIZED"' in post.text
        assert (await http.post("/")).status_code == 405  # only a GET of / redirects


async def test_a_wrong_token_stays_on_the_form_and_sets_no_cookie(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        response = await http.post("/ui/signin", data={"token": "nope", "next": "/ui/"})
        assert response.status_code == 401
        assert "not this gateway&#39;s token" in response.text
        assert "set-cookie" not in response.headers
        empty = await http.post("/ui/signin", data={"token": ""})
        assert empty.status_code == 401 and "Enter the gateway token" in empty.text


async def test_the_cookie_is_signed_httponly_strict_and_never_holds_the_token(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        response = await http.post("/ui/signin", data={"token": gw.token, "next": "//evil/"})
        assert response.headers["location"] == "/ui/"  # no open redirect
        cookie = response.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=strict", "Max-Age=43200", "Path=/"):
            assert attribute in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback
        assert gw.token not in cookie
        forged = cookie.split(";")[0][:-3] + "abc"
        http.cookies.clear()
        http.cookies.set("sessiongate_ui", forged.split("=", 1)[1])
        assert (await http.get("/ui/")).status_code == 303  # a tampered cookie signs nobody in


async def test_the_cookie_is_secure_behind_https(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        headers = {"x-forwarded-proto": "https"}  # a TLS proxy on loopback
        response = await http.post("/ui/signin", data={"token": gw.token}, headers=headers)
        assert "Secure" in response.headers["set-cookie"]


async def test_forms_need_the_csrf_token_and_the_same_origin(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        csrf = await sign_in(http, gw.token)
        form = {"sessionKey": "agent:atlas:main", "message": "hi", "mustExist": "on"}
        stale = await http.post("/ui/send", data={**form, "csrf": "wrong"})
        assert stale.status_code == 403 and 'data-code="FORBIDDEN"' in stale.text
        foreign = await http.post(
            "/ui/send", data={**form, "csrf": csrf}, headers={"origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        assert await gw.gateway.store.history("agent:atlas:main") == []
        sent = await http.post("/ui/send", data={**form, "csrf": csrf})
        assert sent.status_code == 200 and 'data-status="ok"' in sent.text
        assert len(await gw.gateway.store.history("agent:atlas:main")) == 2


async def test_pages_carry_security_headers_and_assets_are_cached_by_hash(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        await sign_in(http, gw.token)
        page = await http.get("/ui/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["cache-control"] == "no-store"
        assert "<script>" not in page.text and " on" + "click=" not in page.text
        scripts = re.findall(r'src="(/ui/static/ui\.[0-9a-f]{12}\.js)"', page.text)
        assert len(scripts) == 1
        asset = await http.get(scripts[0])
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "javascript" in asset.headers["content-type"]
        missing = await http.get("/ui/static/ui.000000000000.js")
        assert missing.status_code == 404


async def test_refusals_from_the_page_are_pages_not_tracebacks(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        csrf = await sign_in(http, gw.token)
        cases = [
            (await http.get("/ui/sessions?kind=bogus"), 400, "INVALID_REQUEST"),
            (await http.get("/ui/sessions?cursor=zzz"), 400, "INVALID_REQUEST"),
            (await http.get("/ui/sessions/agent:atlas:"), 400, "INVALID_SESSION_KEY"),
            (await http.get("/ui/sessions/agent:nobody:main"), 404, "AGENT_NOT_FOUND"),
            (await http.get("/ui/doctor/plan?sessionKey=agent:atlas:main"), 409, "CONFLICT"),
            (
                await http.post(
                    "/ui/send",
                    data={
                        "csrf": csrf,
                        "caller": "agent:ghost:main",
                        "sessionKey": "main",
                        "message": "x",
                    },
                ),
                404,
                "AGENT_NOT_FOUND",
            ),
            (
                await http.post("/ui/send", data={"csrf": csrf, "sessionKey": "main"}),
                400,
                "INVALID_REQUEST",
            ),
        ]
        for response, status, code in cases:
            assert response.status_code == status, response.text[:500]
            assert f'data-code="{code}"' in response.text
        assert await gw.gateway.store.count_sessions() == 2


async def test_sessions_view_filters_by_origin_and_text_and_pages_by_cursor(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        await sign_in(http, gw.token)
        for n in range(60):
            await gw.gateway.resolver.ensure_origin_session(
                f"agent:peggy:subagent:{n:08d}-0000-4000-8000-000000000000", "spawn", "test"
            )
        first = (await http.get("/ui/sessions?origin=spawn")).text
        assert first.count("<tr>") + first.count("<tr ") == 51  # header + 50 rows
        older = re.search(r'href="/ui/sessions\?([^"]+)" rel="next"', first)
        assert older and "origin=spawn" in older[1]
        second = (await http.get("/ui/sessions?" + older[1].replace("&amp;", "&"))).text
        assert second.count('href="/ui/sessions/agent:peggy:subagent:') == 10
        startup = (await http.get("/ui/sessions?origin=startup&q=ATLAS")).text
        assert "agent:atlas:main" in startup and "agent:peggy:main" not in startup


async def test_the_page_cookie_opens_the_websocket_only_from_the_same_origin(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        await sign_in(http, gw.token)
        cookie = f"sessiongate_ui={http.cookies['sessiongate_ui']}"
        connect_frame = json.dumps({"type": "req", "id": 1, "method": "connect", "params": {}})
        other_scheme = "https://" + gw.url.removeprefix("http://")  # same host, not the page
        for origin, accepted in ((gw.url, True), ("http://evil.example", False),
                                 (other_scheme, False)):  # fmt: skip
            headers = {"cookie": cookie, "origin": origin}
            async with connect(gw.ws_url, additional_headers=headers) as ws:
                await ws.send(connect_frame)
                assert json.loads(await ws.recv())["ok"] is accepted
        async with connect(gw.ws_url) as ws:  # no cookie, no token
            await ws.send(connect_frame)
            assert json.loads(await ws.recv())["error"]["code"] == "UNAUTHORIZED"


async def test_audit_subscribe_streams_refusals_over_the_websocket(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, connect(gw.ws_url) as ws:
        frames = [
            {"type": "req", "id": 1, "method": "connect", "params": {"token": gw.token}},
            {"type": "req", "id": 2, "method": "audit.subscribe", "params": {}},
            {"type": "req", "id": 3, "method": "agent", "params": SEND_STRICT},
        ]
        for frame in frames[:2]:
            await ws.send(json.dumps(frame))
            assert json.loads(await ws.recv())["ok"]
        await ws.send(json.dumps(frames[2]))
        received = [json.loads(await ws.recv()) for _ in range(2)]
        event = next(f for f in received if f["type"] == "event")
        assert event["event"] == "audit" and event["payload"]["decision"] == "rejected"
        assert event["payload"]["suggestions"] == ["agent:atlas:main"]


SEND_STRICT = {"sessionKey": INCIDENT_KEY, "message": "hi"}
