"""The cases of "every request answered, nothing created by accident, one place decides".

Each test drives the real server over real HTTP / WebSocket: intents on every
reference (spawn), the catch-all at each surface's edge, wire validation before
and after authentication, and the rules applied on the gateway's one invoke path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect

from sessiongate.config import SessionGateConfig
from sessiongate.wire import MAX_JSON_DEPTH
from tests.conftest import LOOP_ERRORS
from tests.helpers import postgres_schema

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

MAINS = {"agent:atlas:main", "agent:peggy:main"}


def client(gw: Any, **headers: str) -> httpx.AsyncClient:
    auth = {"authorization": f"Bearer {gw.token}", **headers}
    return httpx.AsyncClient(base_url=gw.url, headers=auth)


async def session_keys(gw: Any) -> set[str]:
    page = await gw.gateway.store.list_sessions(limit=500)
    return {s.key for s in page.sessions}


async def invoke(http: httpx.AsyncClient, tool: str, **args: Any) -> tuple[int, dict[str, Any]]:
    response = await http.post("/tools/invoke", json={"tool": tool, "args": args})
    return response.status_code, response.json()


async def ws_request(ws: ClientConnection, rid: Any, method: str, params: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
    for _ in range(100):
        frame = json.loads(await ws.recv())
        if frame["type"] == "res" and frame["id"] == rid:
            return dict(frame)
    raise AssertionError(f"no answer to {rid}")


# ---------------------------------------------------------------- intents


async def test_spawn_under_a_missing_parent_creates_nothing_even_when_permissive(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client(gw) as http:
        status, body = await invoke(
            http,
            "sessions_spawn",
            agentId="atlas",
            task="t",
            parentSessionKey="agent:atlas:cron:typo",
        )
        assert status == 404, body
        assert body["error"]["code"] == "SESSION_NOT_FOUND"
        assert body["error"]["details"]["canonicalKey"] == "agent:atlas:cron:typo"
        assert await session_keys(gw) == MAINS


@pytest.mark.parametrize(
    ("extra", "argument"),
    [
        ({"agentId": "peggy"}, "agentId"),
        ({"agentId": "atlas", "label": "x"}, "label"),
        ({"agentId": "atlas", "parentSessionKey": "agent:atlas:main"}, "parentSessionKey"),
    ],
)
async def test_spawn_arguments_that_disagree_with_sessionkey_are_refused(
    serve: Serve, config_factory: ConfigFactory, extra: dict[str, Any], argument: str
) -> None:
    async with serve(config_factory()) as gw, client(gw) as http:
        status, body = await invoke(
            http, "sessions_spawn", task="t", sessionKey="agent:atlas:cron:new", **extra
        )
        assert status == 400, body
        assert body["error"]["code"] == "INVALID_REQUEST"
        assert any(p.startswith(argument) for p in body["error"]["details"]["problems"])
        assert await session_keys(gw) == MAINS
        assert await gw.gateway.store.history("agent:atlas:main") == []


async def test_a_caller_that_does_not_exist_is_refused_and_not_created(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client(gw) as http:
        body = {"tool": "sessions_list", "args": {}, "sessionKey": "agent:peggy:cron:ghost"}
        response = await http.post("/tools/invoke", json=body)
        assert response.status_code == 404
        async with connect(gw.ws_url) as ws:
            params = {"token": gw.token, "sessionKey": "agent:peggy:cron:ghost"}
            answer = await ws_request(ws, 0, "connect", params)
            assert answer["error"]["code"] == "SESSION_NOT_FOUND"
        assert await session_keys(gw) == MAINS


# ---------------------------------------------------------------- one place decides


async def test_the_allow_list_holds_on_every_surface(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__tools={"allow": ["sessions_list"]})
    async with serve(config) as gw, client(gw) as http:
        for path in ("/v1/sessions/main", "/v1/sessions/main/messages"):
            response = await http.get(path)
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "FORBIDDEN"
        assert (await http.get("/v1/sessions")).status_code == 200
        async with connect(gw.ws_url) as ws:
            assert (await ws_request(ws, 0, "connect", {"token": gw.token}))["ok"]
            calls = [
                ("agent", {"sessionKey": "main", "message": "hi"}),
                ("sessions.history", {"sessionKey": "main"}),
                ("sessions.resolve", {"sessionKey": "main"}),
                ("sessions.subscribe", {"sessionKey": "main"}),
                ("tools.invoke", {"tool": "sessions_send", "args": {}}),
            ]
            for rid, (method, params) in enumerate(calls, 1):
                answer = await ws_request(ws, rid, method, params)
                assert answer["error"]["code"] == "FORBIDDEN", (method, answer)
        assert await gw.gateway.store.history("agent:atlas:main") == []


# ---------------------------------------------------------------- catch-all


def _break_history(gw: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug nobody typed")

    monkeypatch.setattr(gw.gateway.store, "history", broken)


def _logged_request_ids(logs: list[dict[str, Any]]) -> set[str]:
    return {
        e["request_id"]
        for e in logs
        if e.get("event") == "unexpected error" and isinstance(e.get("exc_info"), ZeroDivisionError)
    }


async def test_http_unexpected_error_is_internal_error_with_a_logged_request_id(
    serve: Serve, config_factory: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve(config_factory()) as gw, client(gw) as http:
        _break_history(gw, monkeypatch)
        with capture_logs() as logs:
            response = await http.get("/v1/sessions/main/messages")
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["code"] == "INTERNAL_ERROR"
        assert "ZeroDivision" not in response.text and "Traceback" not in response.text
        assert _logged_request_ids(logs) == {error["details"]["requestId"]}
        assert (await http.get("/v1/sessions/main")).status_code == 200


async def test_ws_unexpected_error_is_answered_and_the_connection_stays_usable(
    serve: Serve, config_factory: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve(config_factory()) as gw, connect(gw.ws_url) as ws:
        assert (await ws_request(ws, 0, "connect", {"token": gw.token}))["ok"]
        _break_history(gw, monkeypatch)
        with capture_logs() as logs:
            answer = await ws_request(ws, 1, "sessions.history", {"sessionKey": "main"})
        assert answer["ok"] is False and answer["error"]["code"] == "INTERNAL_ERROR"
        assert "ZeroDivision" not in json.dumps(answer)
        assert _logged_request_ids(logs) == {answer["error"]["details"]["requestId"]}
        assert (await ws_request(ws, 2, "sessions.resolve", {"sessionKey": "main"}))["ok"]


def test_the_suite_sees_what_the_event_loop_logs() -> None:
    """The conftest hook that fails a test on an un-retrieved task exception sees it."""
    LOOP_ERRORS.unreported()
    logging.getLogger("asyncio").error("Task exception was never retrieved")
    assert LOOP_ERRORS.unreported() == ["asyncio: Task exception was never retrieved"]


# ---------------------------------------------------------------- wire validation

DEEP = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
VERY_DEEP = '{"a":' * 5000 + "1" + "}" * 5000
SURROGATE_LABEL = '{"tool":"sessions_send","args":{"label":"\\ud800","message":"m"}}'
SURROGATE_KEY = '{"tool":"sessions_send","args":{"sessionKey":"\\udfff","message":"m"}}'
NAN = '{"tool":"sessions_send","args":{"sessionKey":"main","message":"m","timeoutSeconds":NaN}}'
NUL = '{"tool":"sessions_send","args":{"sessionKey":"main","message":"a\\u0000b"}}'


@pytest.mark.parametrize("body", [DEEP, VERY_DEEP, SURROGATE_LABEL, SURROGATE_KEY, NAN, NUL])
async def test_malformed_bodies_are_400_before_and_after_auth(
    serve: Serve, config_factory: ConfigFactory, body: str
) -> None:
    async with serve(config_factory(gateway__sessions={"createOnMiss": False})) as gw:
        async with client(gw) as http:
            response = await http.post("/tools/invoke", content=body)
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "INVALID_REQUEST"
        async with httpx.AsyncClient(base_url=gw.url) as anonymous:
            response = await anonymous.post("/tools/invoke", content=body)
            assert response.status_code == 401
        assert await session_keys(gw) == MAINS
        assert await gw.gateway.store.history("agent:atlas:main") == []


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sessions?limit=%C2%B2",  # ², a digit to str.isdigit(), not to int()
        "/v1/sessions?limit=99999999999999999999999",
        "/v1/sessions?cursor=s" + "f" * 40,
        "/v1/sessions?agentId=a%00b",
        "/v1/sessions/main/messages?before=" + "9" * 30,
        "/v1/sessions/main/messages?before=%D9%A1",  # Arabic-Indic one
        "/v1/sessions/main/messages?limit=-1",
    ],
)
async def test_out_of_range_query_arguments_are_400(
    serve: Serve, config_factory: ConfigFactory, path: str
) -> None:
    async with serve(config_factory()) as gw, client(gw) as http:
        response = await http.get(path)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    "frame",
    [
        DEEP,
        VERY_DEEP,
        '{"type":"req","id":1,"method":"connect","params":{"token":"\\ud800"}}',
        '{"type":"req","id":1,"method":"connect","params":{"token":"\\u00e9"}}',
        '{"type":"req","id":{"x":[1]},"method":"connect","params":{}}',
        '{"type":"req","id":1,"method":"connect","params":{"token":NaN}}',
    ],
)
async def test_malformed_ws_frames_are_answered_before_and_after_connect(
    serve: Serve, config_factory: ConfigFactory, frame: str
) -> None:
    async with serve(config_factory(gateway__sessions={"createOnMiss": False})) as gw:
        async with connect(gw.ws_url) as ws:
            await ws.send(frame)
            answer = json.loads(await ws.recv())
            assert answer["type"] == "res" and answer["ok"] is False
            assert answer["error"]["code"] in ("INVALID_REQUEST", "UNAUTHORIZED"), answer
        async with connect(gw.ws_url) as ws:
            assert (await ws_request(ws, 0, "connect", {"token": gw.token}))["ok"]
            await ws.send(frame.replace('"connect"', '"agent"'))
            answer = json.loads(await ws.recv())
            assert answer["type"] == "res" and answer["ok"] is False, answer
            assert answer["error"]["code"] == "INVALID_REQUEST", answer
            assert (await ws_request(ws, 9, "sessions.resolve", {"sessionKey": "main"}))["ok"]
        assert await session_keys(gw) == MAINS


async def test_ws_agent_with_a_lone_surrogate_key_is_400_and_creates_nothing(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, connect(gw.ws_url) as ws:
        assert (await ws_request(ws, 0, "connect", {"token": gw.token}))["ok"]
        await ws.send('{"type":"req","id":1,"method":"agent","params":'
                      '{"sessionKey":"agent:atlas:cron:\\ud83d","message":"m"}}')  # fmt: skip
        answer = json.loads(await ws.recv())
        assert answer["id"] == 1 and answer["error"]["code"] == "INVALID_REQUEST"
        assert await session_keys(gw) == MAINS


async def test_inbound_message_with_nul_on_postgres_is_400_and_creates_nothing(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with postgres_schema() as url:
        config = config_factory(storage={"url": url})
        async with serve(config) as gw, client(gw) as http:
            message = {"peer": {"kind": "direct", "id": "42"}, "text": "a\x00b"}
            response = await http.post("/v1/channels/telegram/inbound", json=message)
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "INVALID_REQUEST"
            assert await session_keys(gw) == MAINS


# ---------------------------------------------------------------- one list of wire codes


def test_wire_codes_live_only_in_errors_py() -> None:
    """Each code is defined (and documented) once, in errors.py; no other module spells one."""
    import re
    from pathlib import Path

    import sessiongate
    from sessiongate import errors
    from sessiongate.errors import ERRORS_BY_CODE

    for code in ERRORS_BY_CODE:
        assert code in (errors.__doc__ or ""), f"{code} is not in errors.py's docstring"
    root = Path(sessiongate.__file__).parent
    spelled = re.compile(r"""["']([A-Z][A-Z_]{3,}[A-Z])["']""")
    for path in root.rglob("*.py"):
        if path.name == "errors.py":
            continue
        found = set(spelled.findall(path.read_text(encoding="utf-8")))
        codes = found & (set(ERRORS_BY_CODE) | {"HTTP_ERROR"})
        assert not codes, f"{path.relative_to(root)} spells wire codes {sorted(codes)}"
        assert not re.search(r'"code":\s*"', path.read_text(encoding="utf-8")), path


def test_surfaces_reach_only_the_gateway_and_tools_runtimes_only_narrow_parts() -> None:
    """Surfaces never touch the store or the resolver; runtimes, tools and channels never
    import the gateway (they get the narrow pieces they use: no import cycle)."""
    import re
    from pathlib import Path

    import sessiongate

    root = Path(sessiongate.__file__).parent
    for path in (root / "server").rglob("*.py"):  # the control page (server/ui) too
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?<!sessiongate)\.(store|resolver)\b", text), path.name
    narrow = [*(root / "runtime").glob("*.py"), *(root / "tools").glob("*.py")]
    for path in [*narrow, root / "channels.py"]:
        assert "sessiongate.gateway" not in path.read_text(encoding="utf-8"), path.name


async def test_llm_tool_calls_obey_the_allow_list(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.helpers import completion, tool_call, upstream

    requests: list[dict[str, Any]] = []

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        requests.append(body)
        results = [m for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return completion(tool_call("c1", "sessions_history", {"sessionKey": "main"}))
        return completion({"content": json.loads(results[-1]["content"])["error"]["code"]})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    async with upstream(app) as fake:
        config = config_factory(
            gateway__tools={"allow": ["sessions_send"]},
            models={"providers": {"fake": {"baseUrl": f"{fake.url}/v1", "apiKey": "k"}}},
            agents={"list": [{"id": "atlas", "default": True},
                             {"id": "peggy", "model": "fake/m"}]},
        )  # fmt: skip
        async with serve(config) as gw, client(gw) as http:
            status, body = await invoke(
                http, "sessions_send", sessionKey="agent:peggy:main", message="read atlas"
            )
            assert status == 200 and body["result"]["reply"] == "FORBIDDEN", body
    assert {t["function"]["name"] for t in requests[0]["tools"]} == {"sessions_send"}
