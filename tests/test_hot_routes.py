"""The hot routes (`server.hot_routes`) answer exactly as the router's routes do.

Every request below is sent over a raw socket twice, to the same state: once served
by `HotRoutes`, once with it stepped aside (everything through starlette's router, as
before it existed). Refusals must match byte for byte (but the date and request id);
successes, whose bodies carry fresh run ids, by status and headers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from sessiongate.config import SessionGateConfig
from sessiongate.server.hot_routes import HotRoutes
from tests.helpers import INCIDENT_KEY

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

PEGGY = "agent:peggy:main"
SEND = {"tool": "sessions_send", "args": {"sessionKey": PEGGY, "message": "hi"}}


def body(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def post(content: Any, token: str | None = "TOKEN", extra: str = "", length: bool = True) -> str:
    raw = body(content).decode("latin-1")
    head = f"POST /tools/invoke HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}"
    if token is not None:
        head += f"authorization: Bearer {token}\r\n"
    if not length:  # chunked
        return head + f"transfer-encoding: chunked\r\n\r\n{len(raw):x}\r\n{raw}\r\n0\r\n\r\n"
    return head + f"content-length: {len(raw)}\r\n\r\n{raw}"


def get(path: str, token: str | None = "TOKEN", extra: str = "", method: str = "GET") -> str:
    auth = f"authorization: Bearer {token}\r\n" if token is not None else ""
    return f"{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{auth}{extra}\r\n"


# (name, request, whether the body must match byte for byte)
CASES: list[tuple[str, str, bool]] = [
    ("send", post({**SEND, "args": {**SEND["args"], "timeoutSeconds": 0}}), False),
    ("strict refusal", post({"tool": "sessions_send",
                             "args": {"sessionKey": INCIDENT_KEY, "message": "m"}}), True),
    ("no token", post(SEND, token=None), True),
    ("wrong token", post(SEND, token="nope"), True),
    ("not json", post(b"{nope"), True),
    ("empty body", post(b""), True),
    ("a list", post([1, 2]), True),
    ("unknown tool", post({"tool": "rm_rf", "args": {}}), True),
    ("tool not a string", post({"tool": 7, "args": {}}), True),
    ("args missing", post({"tool": "sessions_send"}), True),
    ("args not an object", post({"tool": "sessions_send", "args": [1]}), True),
    ("bad args", post({"tool": "sessions_send", "args": {"sessionKey": 5, "mesage": "x"}}), True),
    ("bad envelope and args", post({"tool": "sessions_send", "args": {}, "dryRun": "yes"}), True),
    ("unknown envelope key", post({**SEND, "extra": 1}), True),
    ("action", post({**SEND, "action": "run"}), True),
    ("unknown caller", post({**SEND, "sessionKey": "agent:atlas:cron:nobody"}), True),
    ("dry run", post({**SEND, "dryRun": True}), True),
    ("dry run, bad args", post({"tool": "sessions_send", "args": {}, "dryRun": True}), True),
    ("list", post({"tool": "sessions_list", "args": {"limit": 1}}), False),
    ("list, big limit", post({"tool": "sessions_list", "args": {"limit": 100000}}), False),
    ("over the cap", post({**SEND, "args": {"sessionKey": "x", "message": "x" * 5000}}), True),
    ("chunked, over the cap", post({**SEND, "pad": "x" * 5000}, length=False), True),
    ("chunked", post(SEND, length=False), False),
    ("bad length", post(SEND, extra="content-length: 1x\r\n").replace(
        f"content-length: {len(body(SEND))}\r\n", ""), True),
    ("hit", get("/v1/sessions/agent:atlas:main"), True),
    ("miss", get(f"/v1/sessions/{INCIDENT_KEY}"), True),
    ("hit, no token", get("/v1/sessions/agent:atlas:main", token=None), True),
    ("hit as a caller", get("/v1/sessions/main", extra=f"x-session-key: {PEGGY}\r\n"), True),
    ("hit, unknown caller", get("/v1/sessions/main", extra="x-session-key: nobody\r\n"), True),
    ("key with a slash", get("/v1/sessions/agent:atlas:main/reset"), True),
    ("key with a control", get("/v1/sessions/agent%01x"), True),
    ("key with a newline", get("/v1/sessions/agent%0Ax"), True),
    ("no key", get("/v1/sessions/"), True),
    ("messages", get("/v1/sessions/agent:atlas:main/messages"), True),
    ("query", get("/v1/sessions/agent:atlas:main?followAlias=false"), True),
    ("head", get("/v1/sessions/agent:atlas:main", method="HEAD"), True),
    ("wrong method", get("/tools/invoke"), True),
]  # fmt: skip


async def exchange(port: int, request: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode("latin-1"))
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def comparable(answer: bytes, exact: bool) -> tuple[str, list[str], bytes]:
    head, _, rest = answer.partition(b"\r\n\r\n")
    status, *headers = head.decode("latin-1").split("\r\n")
    kept = [h for h in headers if not h.startswith(("date:", "x-request-id:"))]
    if not exact:
        kept = [h.split(":")[0] for h in kept]  # a fresh run id changes the length
    return status, kept, rest if exact else b""


async def answers(gw: Any) -> list[tuple[str, list[str], bytes]]:
    port = int(gw.url.rsplit(":", 1)[1])
    found = []
    for _, request, exact in CASES:
        answer = await exchange(port, request.replace("TOKEN", gw.token))
        found.append(comparable(answer, exact))
    return found


@pytest.mark.parametrize("openclaw", [False, True])
async def test_hot_routes_answer_as_the_router_does(
    serve: Serve, config_factory: ConfigFactory, monkeypatch: pytest.MonkeyPatch, openclaw: bool
) -> None:
    config = config_factory(
        gateway__maxBodyBytes=2048,
        gateway__compat={"openclaw": openclaw},
        gateway__sessions={"rules": [{"match": "agent:atlas:telegram:*", "createOnMiss": False}]},
    )
    hot = await _run(serve, config)

    async def routed(self: HotRoutes, scope: Any, receive: Any, send: Any) -> None:
        await self.router(scope, receive, send)

    monkeypatch.setattr(HotRoutes, "__call__", routed)
    through_router = await _run(serve, config)
    for (name, _, _), mine, theirs in zip(CASES, hot, through_router, strict=True):
        assert mine == theirs, name


async def _run(serve: Serve, config: SessionGateConfig) -> list[tuple[str, list[str], bytes]]:
    async with serve(config) as gw:
        return await answers(gw)


async def test_a_refusal_answered_by_the_hot_route_is_audited_once(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Any
) -> None:
    """The tool call's refusal is answered where it is caught: one audit line each."""
    refusal = CASES[1][1]
    rules = [{"match": "agent:atlas:telegram:*", "createOnMiss": False}]
    async with serve(config_factory(gateway__sessions={"rules": rules})) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        for _ in range(3):
            answer = await exchange(port, refusal.replace("TOKEN", gw.token))
            assert answer.startswith(b"HTTP/1.1 404 ")
            assert b'"SESSION_NOT_FOUND"' in answer
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    refused = [json.loads(line) for line in lines if INCIDENT_KEY in line]
    assert [event["decision"] for event in refused] == ["rejected"] * 3
