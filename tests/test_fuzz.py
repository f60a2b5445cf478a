"""Seeded, bounded fuzzing of a strict gateway over real HTTP and WebSocket.

Whatever arrives: no 5xx, no ``INTERNAL_ERROR``, no traceback in any answer,
every WebSocket request answered by its id, and no session created by
addressing (`origin == "address"`) under ``createOnMiss: false``. Spawned
children and inbound channel sessions are legitimate creations and allowed.

HTTP inputs come from hypothesis (derandomized: the same examples every run);
WebSocket frames are valid frames mutated by a seeded `random.Random`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import string
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sessiongate.config import SessionGateConfig
from sessiongate.wire import MAX_JSON_DEPTH
from tests.helpers import INCIDENT_KEY

from .threaded import ThreadedGateway, gateway_in_thread

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

STRICT = {"createOnMiss": False}
KEYS = ["main", "MAIN", "agent:atlas:main", "agent:peggy:main", INCIDENT_KEY, "agent:nobody:main",
        "agent:atlas:cron:x", "hook:1", "agent::main", ":", "", " main "]  # fmt: skip
ARG_NAMES = ["sessionKey", "message", "label", "agentId", "timeoutSeconds", "createOnMiss",
             "limit", "before", "cursor", "parentSessionKey", "task", "kind", "extra"]  # fmt: skip
TOOLS = ["sessions_send", "sessions_spawn", "sessions_list", "sessions_history", "nope", ""]
HTTP_SETTINGS = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ---------------------------------------------------------------- values

nasty_text = st.one_of(
    st.sampled_from(KEYS),
    st.text(max_size=40),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "9" * 30, "-1", "1e400", "NaN"]),
    st.sampled_from(["\u00b2", "\u0661"]),  # digits to str.isdigit(), not all to int()
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 600, 601, 2**63, -(2**63) - 1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(ARG_NAMES), inner, max_size=4)
    ),
    max_leaves=12,
)
tool_args = st.dictionaries(st.sampled_from(ARG_NAMES), json_values, max_size=5)


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


SURROGATE_BODY = b'{"tool":"sessions_send","args":{"message":"\\ud800"}}'
raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"[]", b"null", b'"x"', b"NaN", _deep(MAX_JSON_DEPTH + 2).encode(),
                     _deep(3000).encode(), SURROGATE_BODY]),
)  # fmt: skip


@st.composite
def invoke_bodies(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = {"tool": draw(st.sampled_from(TOOLS)), "args": draw(tool_args)}
    if draw(st.booleans()):
        body["sessionKey"] = draw(nasty_text)
    if draw(st.booleans()):
        body[draw(st.sampled_from(["args", "tool", "x"]))] = draw(json_values)
    return json.dumps(body).encode()


def _url_text(text: str) -> str:
    """Percent-encoded as on the wire; a lone surrogate becomes the bytes that encode it
    (invalid UTF-8), which is what a hostile client can send."""
    return urllib.parse.quote(text, safe=":", errors="surrogatepass")


url_text = nasty_text.map(_url_text)
QUERY_NAMES = ["limit", "limit", "before", "before", "cursor", "agentId", "kind", "x"]
odd_query_values = st.sampled_from(
    ["%C2%B2", "%D9%A1", "9" * 30, "-1", "%ED%A0%80", "%00", "s" + "f" * 40, "1%00"]
)
query_values = st.one_of(odd_query_values, odd_query_values, url_text, numbers.map(str))
get_paths = st.one_of(
    st.sampled_from(["/v1/sessions", "/healthz", "/readyz", "/metrics"]),
    url_text.map(lambda k: f"/v1/sessions/{k}"),
    url_text.map(lambda k: f"/v1/sessions/{k}/messages"),
)
other_paths = st.one_of(
    st.sampled_from(["/", "/v1/nowhere", "/ws", "/tools/invoke", "/v1/sessions"]),
    url_text.map(lambda c: f"/v1/channels/{c}/inbound"),
)
header_text = st.text(alphabet=string.printable.strip() + " ", max_size=40)
inbound_bodies = st.fixed_dictionaries(
    {"peer": st.one_of(json_values, st.fixed_dictionaries({"kind": st.sampled_from(
        ["direct", "group", "x"]), "id": nasty_text})), "text": nasty_text},
    optional={"accountId": json_values, "agentId": json_values, "timeoutSeconds": numbers},
).map(lambda body: json.dumps(body).encode())  # fmt: skip


@st.composite
def targets(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(method, path, body): mostly the routes that take arguments."""
    kind = draw(st.sampled_from(["get", "get", "invoke", "invoke", "inbound", "other"]))
    if kind == "get":
        return "GET", draw(get_paths), b""
    if kind == "invoke":
        return "POST", "/tools/invoke", draw(st.one_of(invoke_bodies(), raw_bodies))
    if kind == "inbound":
        channel = draw(st.sampled_from(["telegram", "x"]))
        return (
            "POST",
            f"/v1/channels/{channel}/inbound",
            draw(st.one_of(inbound_bodies, raw_bodies)),
        )
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    return method, draw(other_paths), draw(raw_bodies)


@st.composite
def http_requests(draw: st.DrawFn) -> dict[str, Any]:
    method, path, body = draw(targets())
    headers: dict[str, str] = {}
    auth = draw(st.sampled_from(["good", "good", "good", "bad", "none"]))
    if auth != "none":
        headers["authorization"] = "Bearer " + ("{token}" if auth == "good" else "nope")
    if draw(st.booleans()):
        own = draw(st.one_of(st.sampled_from(KEYS), header_text))
        headers["x-session-key"] = own.strip()  # a client cannot send edge whitespace
    query = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), query_values, max_size=3))
    if query:
        path += "?" + "&".join(f"{name}={value}" for name, value in query.items())
    return {"method": method, "path": path, "headers": headers, "content": body}


def _assert_answered_well(status: int, text: str) -> None:
    assert status < 500, text
    assert "Traceback" not in text and "INTERNAL_ERROR" not in text, text


def _address_created(threaded: ThreadedGateway) -> list[str]:
    async def created() -> list[str]:
        page = await threaded.running.gateway.store.list_sessions(limit=1000)
        return [s.key for s in page.sessions if s.provenance.origin == "address"]

    return threaded.call(created)


def test_fuzzed_http_requests_never_fail_the_gateway(config_factory: ConfigFactory) -> None:
    with gateway_in_thread(config_factory(gateway__sessions=STRICT)) as threaded:
        gw = threaded.running
        with httpx.Client(base_url=gw.url, timeout=30) as http:

            @HTTP_SETTINGS
            @given(http_requests())
            def one_request(request: dict[str, Any]) -> None:
                headers = {k: v.replace("{token}", gw.token) for k, v in request["headers"].items()}
                response = http.request(
                    request["method"],
                    request["path"],
                    headers=headers,
                    content=request["content"],
                )
                _assert_answered_well(response.status_code, response.text)
                if not request["path"].startswith("/metrics"):
                    assert "ok" in response.json(), response.text

            one_request()
        assert _address_created(threaded) == []


# ---------------------------------------------------------------- WebSocket

FRAMES: list[dict[str, Any]] = [
    {"method": "agent", "params": {"sessionKey": "main", "message": "hi", "timeoutSeconds": 5}},
    {"method": "agent", "params": {"sessionKey": INCIDENT_KEY, "message": "hi"}},
    {"method": "sessions.list", "params": {"limit": 5}},
    {"method": "sessions.history", "params": {"sessionKey": "main", "limit": 3}},
    {"method": "sessions.resolve", "params": {"sessionKey": "agent:peggy:main"}},
    {"method": "sessions.subscribe", "params": {"sessionKey": "main"}},
    {"method": "sessions.unsubscribe", "params": {"sessionKey": "main"}},
    {"method": "tools.invoke", "params": {"tool": "sessions_send",
                                          "args": {"sessionKey": "MAIN", "message": "m"}}},
    {"method": "tools.invoke", "params": {"tool": "sessions_spawn",
                                          "args": {"agentId": "atlas", "task": "t"}}},
]  # fmt: skip
WILD: list[Any] = [None, True, -1, 2**64, 1e308, "", "\ud800", "\x00", [], {}, [[[[]]]],
                   "x" * 300, {"sessionKey": {"$ne": 1}}, "agent:atlas:cron:new"]  # fmt: skip


def _mutate_value(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and value and depth < 4 and rng.random() < 0.7:
        copy = dict(value)
        name = rng.choice(list(copy))
        choice = rng.random()
        if choice < 0.2:
            del copy[name]
        elif choice < 0.3:
            copy[rng.choice(ARG_NAMES)] = rng.choice(WILD)
        else:
            copy[name] = _mutate_value(rng, copy[name], depth + 1)
        return copy
    return rng.choice(WILD)


def _frame_text(rng: random.Random, rid: int) -> tuple[str, bool]:
    """A mutated frame and whether it is a request the gateway must answer by `rid`."""
    frame = {"type": "req", "id": rid, **rng.choice(FRAMES)}
    roll = rng.random()
    if roll < 0.5:
        frame["params"] = _mutate_value(rng, frame["params"])
    elif roll < 0.6:
        frame["method"] = rng.choice([*WILD, "connect", "sessions.nope"])
    elif roll < 0.65:
        frame["type"] = rng.choice(WILD)
    elif roll < 0.7:
        frame["params"] = json.loads(_deep(MAX_JSON_DEPTH + rng.randint(0, 50)))
    text = json.dumps(frame)
    if rng.random() < 0.1:  # cut or corrupt the text: then no id can be read back
        cut = rng.randint(0, len(text))
        return text[:cut] + rng.choice(["", "\\", "\\ud800", "}", '"']), False
    return text, True


async def _answers(ws: ClientConnection, wanted: set[int], seen_texts: list[str]) -> set[int]:
    """Read frames until every id in `wanted` is answered (or the connection closes)."""
    answered: set[int] = set()
    async with asyncio.timeout(30):
        while not wanted <= answered:
            text = await ws.recv()
            assert isinstance(text, str)
            seen_texts.append(text)
            frame = json.loads(text)
            if frame["type"] == "res" and isinstance(frame["id"], int):
                answered.add(frame["id"])
    return answered


async def _connected(gw: Any) -> ClientConnection:
    ws = await connect(gw.ws_url, max_size=None)
    hello = {"token": gw.token, "sessionKey": "agent:peggy:main"}
    await ws.send(json.dumps({"type": "req", "id": 0, "method": "connect", "params": hello}))
    assert json.loads(await ws.recv())["ok"]
    return ws


async def test_mutated_ws_frames_are_each_answered(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    rng = random.Random(20261125)
    texts: list[str] = []
    async with serve(config_factory(gateway__sessions=STRICT)) as gw:
        rid = 0
        for _ in range(12):
            ws = await _connected(gw)
            for _ in range(5):  # batches, under the in-flight budget
                wanted: set[int] = set()
                for _ in range(6):
                    rid += 1
                    text, answerable = _frame_text(rng, rid)
                    await ws.send(text)
                    if answerable:
                        wanted.add(rid)
                missing = wanted - await _answers(ws, wanted, texts)
                assert not missing, f"requests never answered: {sorted(missing)}"
            await ws.close()
        await _fuzz_first_frames(gw, rng, texts)
        page = await gw.gateway.store.list_sessions(limit=1000)
        assert [s.key for s in page.sessions if s.provenance.origin == "address"] == []
    for text in texts:
        assert "Traceback" not in text and "INTERNAL_ERROR" not in text, text


async def _fuzz_first_frames(gw: Any, rng: random.Random, texts: list[str]) -> None:
    """Before authentication: every first frame, however broken, gets a `res`."""
    for rid in range(1000, 1025):
        text, _ = _frame_text(rng, rid)
        if rng.random() < 0.5:
            text = text.replace('"type": "req"', '"type": "req", "method": "connect"', 1)
        async with connect(gw.ws_url) as ws:
            await ws.send(text)
            try:
                answer = await ws.recv()
            except ConnectionClosed as exc:  # pragma: no cover - would be the bug
                raise AssertionError(f"closed without an answer to {text!r}") from exc
            assert isinstance(answer, str)
            texts.append(answer)
            assert json.loads(answer)["type"] == "res"


# ---------------------------------------------------------------- A2A (JSON-RPC)

A2A_METHODS = ["SendMessage", "SendStreamingMessage", "GetTask", "CancelTask", "ListTasks",
               "SubscribeToTask", "GetExtendedAgentCard", "CreateTaskPushNotificationConfig",
               "message/send", "tasks/get", "nope", ""]  # fmt: skip
A2A_NAMES = ["message", "parts", "text", "data", "url", "contextId", "taskId", "messageId",
             "role", "id", "historyLength", "pageSize", "configuration", "returnImmediately",
             "metadata", "extra"]  # fmt: skip
a2a_values = st.recursive(
    st.one_of(scalars, st.sampled_from(["ROLE_USER", "ROLE_AGENT", "ctx-never-issued"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(A2A_NAMES), inner, max_size=4)
    ),
    max_leaves=14,
)


@st.composite
def a2a_message(draw: st.DrawFn) -> dict[str, Any]:
    """A message close to a valid one: most fields right, one or two of them wild."""
    message: dict[str, Any] = {"role": "ROLE_USER", "messageId": draw(nasty_text),
                               "parts": [{"text": draw(nasty_text)}]}  # fmt: skip
    if draw(st.booleans()):
        message["contextId"] = draw(nasty_text)
    if draw(st.booleans()):
        message[draw(st.sampled_from(A2A_NAMES))] = draw(a2a_values)
    return message


@st.composite
def a2a_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["send", "send", "task", "wild", "raw"]))
    if kind == "raw":
        return draw(raw_bodies)
    version = draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2]))
    body: dict[str, Any] = {"jsonrpc": version, "id": draw(st.one_of(st.integers(), nasty_text))}
    if kind == "send":
        body["method"] = draw(st.sampled_from(["SendMessage", "SendStreamingMessage"]))
        body["params"] = {"message": draw(a2a_message())}
    elif kind == "task":
        body["method"] = draw(st.sampled_from(["GetTask", "CancelTask", "ListTasks"]))
        body["params"] = {draw(st.sampled_from(["id", "contextId"])): draw(nasty_text)}
    else:
        body["method"] = draw(st.sampled_from(A2A_METHODS))
        body["params"] = draw(a2a_values)
    return json.dumps(body).encode()


def _assert_structured_a2a(response: httpx.Response) -> None:
    """A JSON-RPC answer (result or a structured error; never -32603) or the wire form."""
    _assert_answered_well(response.status_code, response.text)
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line for line in response.text.splitlines() if line.startswith("data:")]
        answers = [json.loads(line.removeprefix("data:")) for line in events]
    else:
        answers = [response.json()]
    for answer in answers:
        known = {"result", "error", "ok", "task", "message", "statusUpdate", "artifactUpdate"}
        assert known & set(answer), answer
        if "error" in answer and "code" in answer["error"]:
            assert answer["error"]["code"] not in (-32603, 500), answer


def test_fuzzed_a2a_requests_answer_structured_errors(config_factory: ConfigFactory) -> None:
    with gateway_in_thread(config_factory(gateway__sessions=STRICT)) as threaded:
        gw = threaded.running
        headers = {"authorization": f"Bearer {gw.token}", "a2a-version": "1.0"}
        with httpx.Client(base_url=gw.url, timeout=30, headers=headers) as http:

            @settings(HTTP_SETTINGS, max_examples=300)
            @given(
                st.sampled_from(["atlas", "peggy", "zed", "ATLAS"]),
                st.sampled_from(["", "", "/rest/message:send", "/rest/message:stream"]),
                a2a_bodies(),
            )
            def one_request(agent: str, rest: str, body: bytes) -> None:
                if rest:  # HTTP+JSON takes the params object itself (raw bodies go as they are)
                    with contextlib.suppress(
                        ValueError, AttributeError, TypeError, KeyError, RecursionError
                    ):
                        body = json.dumps(json.loads(body)["params"]).encode()
                _assert_structured_a2a(http.post(f"/a2a/{agent}{rest}", content=body))

            one_request()
        assert _address_created(threaded) == []


def _json_rule(raw: bytes) -> tuple[str, Any]:
    """What the `json` module alone makes of `raw` (the rule `load_json`'s fast path keeps)."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        return "value", json.loads(raw, parse_constant=refuse)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "refused", None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(JSON_VALUES | st.binary(max_size=40))
@settings(max_examples=400, derandomize=True, deadline=None, database=None)
def test_load_json_parses_exactly_as_the_json_module(value: Any) -> None:
    """orjson's fast path gives the value `json` gives, and refuses what `json` refuses."""
    from sessiongate.errors import InvalidRequestError
    from sessiongate.wire import load_json

    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    outcome, expected = _json_rule(raw)
    try:
        got = load_json(raw)
    except InvalidRequestError:
        assert outcome == "refused"
        return
    assert outcome == "value"
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert type(got) is type(expected)
