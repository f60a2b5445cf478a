"""Every entry point that takes a session reference, under every createOnMiss mode.

The surfaces are enumerated (tools, WebSocket methods, HTTP routes, CLI
commands, MCP methods and tools), so a new entry point that takes a session reference fails
`test_every_entry_point_taking_a_session_reference_has_a_probe` until it has a
probe here. Each probe states the intent of the reference it sends:

- ``address``: the session a message goes to — the only kind the policy may
  create: under ``false`` it is refused (SESSION_NOT_FOUND, nothing created);
  under ``true`` / ``"warn"`` the call succeeds and exactly that key appears;
- ``parent`` (a spawn's parent), ``own`` (the caller's own session), ``read``:
  SESSION_NOT_FOUND in every mode, and nothing at all is created.

Adding a surface (MCP, the control page, another protocol — OpenClaw's is one): add an enumerator to
`SURFACES` (the names of its entry points that take a session reference), any
entry points that take none to `EXEMPT`, and a list of `Probe`s per entry point to
`PROBES` — a probe is an intent and ``async (ctx, key) -> answer`` where the
answer is the wire form (``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import typer.main
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.routes.rest_routes import create_rest_routes
from a2a.types.a2a_pb2 import ListTasksRequest, SendMessageRequest
from a2a.utils.errors import A2AError
from mcp.shared.exceptions import MCPError
from starlette.routing import Route
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from sessiongate.cli import app as cli_app
from sessiongate.config import parse_config
from sessiongate.mcp_bridge import gateway_client
from sessiongate.server.http import http_routes
from sessiongate.server.mcp import build_mcp_server, transcript_uri
from sessiongate.server.openclaw_ws import OPENCLAW_METHODS
from sessiongate.server.ui import page_routes
from sessiongate.server.ws import METHODS
from sessiongate.tools import TOOLS
from tests.helpers import a2a_client, a2a_user_message, config_data

Intent = Literal["address", "parent", "own", "read"]
CALLER = "agent:peggy:main"


@dataclass(frozen=True)
class Context:
    gw: Any
    http: httpx.AsyncClient
    config_path: Path


Call = Callable[[Context, str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Probe:
    intent: Intent
    call: Call


# ---------------------------------------------------------------- how each surface is called


def tool(name: str, intent: Intent, args: Callable[[str], dict[str, Any]]) -> Probe:
    """A tool called over POST /tools/invoke by peggy's main session."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        body = {"tool": name, "args": args(key), "sessionKey": CALLER}
        return dict((await ctx.http.post("/tools/invoke", json=body)).json())

    return Probe(intent, call)


def ws(method: str, intent: Intent, params: Callable[[str], dict[str, Any]]) -> Probe:
    """A WebSocket method called after connecting as peggy's main session."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        async with connect(ctx.gw.ws_url) as socket:
            hello = {"token": ctx.gw.token, "sessionKey": CALLER}
            await socket.send(
                json.dumps({"type": "req", "id": 0, "method": "connect", "params": hello})
            )
            assert json.loads(await socket.recv())["ok"]
            frame = {"type": "req", "id": 1, "method": method, "params": params(key)}
            await socket.send(json.dumps(frame))
            while True:
                answer = json.loads(await socket.recv())
                if answer["type"] == "res" and answer["id"] == 1:
                    return dict(answer)

    return Probe(intent, call)


def ws_connect_as_own() -> Probe:
    async def call(ctx: Context, key: str) -> dict[str, Any]:
        async with connect(ctx.gw.ws_url) as socket:
            hello = {"token": ctx.gw.token, "sessionKey": key}
            await socket.send(
                json.dumps({"type": "req", "id": 0, "method": "connect", "params": hello})
            )
            return dict(json.loads(await socket.recv()))

    return Probe("own", call)


def openclaw(
    method: str,
    intent: Intent,
    params: Callable[[str], dict[str, Any]],
    scopes: tuple[str, ...] = ("operator.write",),
) -> Probe:
    """OpenClaw's protocol on `/`, as its CLI speaks it: challenge, connect, one request
    (for `agent`, the answer after `accepted`)."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        async with connect("ws" + ctx.gw.url.removeprefix("http") + "/") as socket:
            assert json.loads(await socket.recv())["event"] == "connect.challenge"
            hello = {"minProtocol": 3, "maxProtocol": 3, "role": "operator",
                     "scopes": list(scopes), "auth": {"token": ctx.gw.token}}  # fmt: skip
            await socket.send(
                json.dumps({"type": "req", "id": "c", "method": "connect", "params": hello})
            )
            assert json.loads(await socket.recv())["ok"]
            frame = {"type": "req", "id": "1", "method": method, "params": params(key)}
            await socket.send(json.dumps(frame))
            while True:
                answer = json.loads(await socket.recv())
                if answer["type"] != "res" or answer["id"] != "1":
                    continue
                if answer["ok"] and answer["payload"].get("status") == "accepted":
                    continue  # `agent` answers twice: accepted, then the run's outcome
                assert set(answer.get("error", {})) <= {"code", "message", "details", "retryable"}
                return dict(answer)

    return Probe(intent, call)


def http_get(path: Callable[[str], str], intent: Intent, own: Callable[[str], str]) -> Probe:
    """A GET with an X-Session-Key header (the caller's own session)."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        response = await ctx.http.get(path(key), headers={"x-session-key": own(key)})
        return dict(response.json())

    return Probe(intent, call)


def http_call(
    method: str,
    path: Callable[[str], str],
    intent: Intent,
    own: Callable[[str], str],
    body: dict[str, Any] | None = None,
) -> Probe:
    """A request with a method and an optional JSON body, with an X-Session-Key header."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        response = await ctx.http.request(
            method, path(key), json=body, headers={"x-session-key": own(key)}
        )
        return dict(response.json())

    return Probe(intent, call)


def http_invoke_as_own() -> Probe:
    async def call(ctx: Context, key: str) -> dict[str, Any]:
        body = {"tool": "sessions_list", "args": {}, "sessionKey": key}
        return dict((await ctx.http.post("/tools/invoke", json=body)).json())

    return Probe("own", call)


def cli(intent: Intent, argv: Callable[[str], list[str]], *, remote: bool = True) -> Probe:
    """A CLI command run in-process (in a thread: it runs its own event loop), with --json."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        args = [*argv(key), "--json", "--config", str(ctx.config_path)]
        if remote:
            args += ["--url", ctx.gw.url, "--token", ctx.gw.token]
        result = await asyncio.to_thread(CliRunner().invoke, cli_app, args)
        return dict(json.loads(result.stdout))

    return Probe(intent, call)


def mcp_tool(name: str, intent: Intent, args: Callable[[str], dict[str, Any]]) -> Probe:
    """A tool called with the MCP SDK's client over /mcp, as peggy's main session."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        async with gateway_client(ctx.gw.url, ctx.gw.token, CALLER) as client:
            result = await client.call_tool(name, args(key))
        wire = result.structured_content or {}
        return wire if result.is_error else {"ok": True, "result": wire}

    return Probe(intent, call)


def page_answer(response: httpx.Response) -> dict[str, Any]:
    """What a control page showed, as the wire form: a refusal carries its code in data-*."""
    found = re.search(r'data-code="([^"]*)" data-canonical-key="([^"]*)"', response.text)
    if found is None:
        return {"ok": response.status_code == 200, "page": response.text[:300]}
    return {"ok": False, "error": {"code": found[1], "details": {"canonicalKey": found[2]}}}


def page(
    intent: Intent, path: Callable[[str], str], form: Callable[[str], dict[str, str]] | None = None
) -> Probe:
    """A control-page view (GET), or a form posted with the page's CSRF token, signed in."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=ctx.gw.url) as browser:
            await browser.post("/ui/signin", data={"token": ctx.gw.token})  # the page's cookie
            if form is None:
                return page_answer(await browser.get(path(key)))
            csrf = re.search(r'name="csrf" value="([^"]+)"', (await browser.get("/ui/send")).text)
            assert csrf is not None
            return page_answer(await browser.post(path(key), data={**form(key), "csrf": csrf[1]}))

    return Probe(intent, call)


def mcp_as_own() -> Probe:
    """The X-Session-Key header: the session an MCP client speaks as."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        async with gateway_client(ctx.gw.url, ctx.gw.token, key) as client:
            result = await client.call_tool("sessions_list", {})
        return dict(result.structured_content or {})

    return Probe("own", call)


def mcp_read_resource() -> Probe:
    async def call(ctx: Context, key: str) -> dict[str, Any]:
        async with gateway_client(ctx.gw.url, ctx.gw.token, CALLER) as client:
            try:
                await client.read_resource(transcript_uri(key))
            except MCPError as exc:
                return dict(exc.data)
        return {"ok": True}

    return Probe("read", call)


def cli_mcp_as_own() -> Probe:
    """`sessiongate mcp --session-key KEY`: refused at start, the wire error on stderr."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        args = ["mcp", "--session-key", key, "--json", "--url", ctx.gw.url, "--token", ctx.gw.token]
        result = await asyncio.to_thread(CliRunner().invoke, cli_app, args)
        assert result.stdout == "", "sessiongate mcp's stdout carries only the protocol"
        return dict(json.loads(result.stderr))

    return Probe("own", call)


def a2a_answer(exc: A2AError) -> dict[str, Any]:
    """An A2A error as the wire form it carries (its data), or a bare failure."""
    return dict(exc.data) if isinstance(exc.data, dict) else {"ok": False, "error": {}}


def a2a_send(intent: Intent, *, streaming: bool = False, binding: str = "JSONRPC") -> Probe:
    """SendMessage (or SendStreamingMessage) with the SDK's client over `binding`, the key as
    contextId, as peggy's main session."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        try:
            async with a2a_client(
                ctx.gw, caller=CALLER, streaming=streaming, binding=binding
            ) as client:
                request = SendMessageRequest(message=a2a_user_message("hi", key))
                async for _ in client.send_message(request):
                    pass
        except A2AError as exc:
            return a2a_answer(exc)
        return {"ok": True}

    return Probe(intent, call)


def a2a_list_tasks(binding: str = "JSONRPC") -> Probe:
    async def call(ctx: Context, key: str) -> dict[str, Any]:
        try:
            async with a2a_client(ctx.gw, caller=CALLER, binding=binding) as client:
                await client.list_tasks(ListTasksRequest(context_id=key))
        except A2AError as exc:
            return a2a_answer(exc)
        return {"ok": True}

    return Probe("read", call)


def a2a_as_own() -> Probe:
    """The X-Session-Key header: the session an A2A client speaks as."""

    async def call(ctx: Context, key: str) -> dict[str, Any]:
        try:
            async with a2a_client(ctx.gw, caller=key) as client:
                async for _ in client.send_message(
                    SendMessageRequest(message=a2a_user_message("hi"))
                ):
                    pass
        except A2AError as exc:
            return a2a_answer(exc)
        return {"ok": True}

    return Probe("own", call)


def page_send(key: str, *, must_exist: bool = False, as_caller: str = CALLER) -> dict[str, str]:
    form = {"caller": as_caller, "sessionKey": key, "message": "hi"}
    return {**form, "mustExist": "on"} if must_exist else form


def own(key: str) -> str:
    return key


def caller(key: str) -> str:
    return CALLER


# ---------------------------------------------------------------- the registry

SEND: Callable[[str], dict[str, Any]] = lambda key: {  # noqa: E731
    "sessionKey": key,
    "message": "hi",
    "timeoutSeconds": 0,
}
SPAWN_NAMED: Callable[[str], dict[str, Any]] = lambda key: {  # noqa: E731
    "agentId": "atlas",
    "task": "t",
    "sessionKey": key,
}
SPAWN_UNDER: Callable[[str], dict[str, Any]] = lambda key: {  # noqa: E731
    "agentId": "atlas",
    "task": "t",
    "parentSessionKey": key,
}
SEND_TOOL = tool("sessions_send", "address", SEND)
ADMIN = ("operator.admin",)
KEY_ONLY: Callable[[str], dict[str, Any]] = lambda key: {"sessionKey": key}  # noqa: E731
LIFECYCLE_ARGS: dict[str, Callable[[str], dict[str, Any]]] = {
    "sessions_delete": lambda key: {"sessionKey": key, "force": True, "reason": "probe"},
    "sessions_reset": KEY_ONLY,
    "sessions_archive": KEY_ONLY,
    "sessions_unarchive": KEY_ONLY,
    "sessions_patch": lambda key: {"sessionKey": key, "label": "x"},
}

PROBES: dict[tuple[str, str], list[Probe]] = {
    ("tool", "sessions_send"): [
        SEND_TOOL,
        tool("sessions_send", "address", lambda k: {**SEND(k), "createOnMiss": True}),
    ],
    ("tool", "sessions_spawn"): [
        tool("sessions_spawn", "address", SPAWN_NAMED),
        tool("sessions_spawn", "parent", SPAWN_UNDER),
    ],
    ("tool", "sessions_history"): [tool("sessions_history", "read", lambda k: {"sessionKey": k})],
    **{("tool", name): [tool(name, "read", args)] for name, args in LIFECYCLE_ARGS.items()},
    ("ws", "connect"): [ws_connect_as_own()],
    **{("ws", f"sessions.{name.removeprefix('sessions_')}"): [
        ws(f"sessions.{name.removeprefix('sessions_')}", "read", args)]
       for name, args in LIFECYCLE_ARGS.items()},
    ("ws", "agent"): [ws("agent", "address", SEND)],
    ("ws", "sessions.history"): [ws("sessions.history", "read", lambda k: {"sessionKey": k})],
    ("ws", "sessions.resolve"): [ws("sessions.resolve", "read", lambda k: {"sessionKey": k})],
    ("ws", "sessions.subscribe"): [ws("sessions.subscribe", "read", lambda k: {"sessionKey": k})],
    ("ws", "tools.invoke"): [
        ws("tools.invoke", "address", lambda k: {"tool": "sessions_send", "args": SEND(k)}),
        ws("tools.invoke", "parent", lambda k: {"tool": "sessions_spawn", "args": SPAWN_UNDER(k)}),
    ],
    ("openclaw", "agent"): [
        openclaw("agent", "address", lambda k: {"sessionKey": k, "message": "hi",
                                                "idempotencyKey": k, "timeout": 30}),
    ],
    ("openclaw", "chat.send"): [
        openclaw("chat.send", "address", lambda k: {"sessionKey": k, "message": "hi"}),
    ],
    ("openclaw", "chat.history"): [
        openclaw("chat.history", "read", lambda k: {"sessionKey": k, "limit": 2}),
    ],
    ("openclaw", "sessions.resolve"): [openclaw("sessions.resolve", "read", lambda k: {"key": k})],
    ("openclaw", "sessions.delete"): [
        openclaw("sessions.delete", "read", lambda k: {"key": k, "force": True}, ADMIN),
    ],
    ("openclaw", "sessions.reset"): [
        openclaw("sessions.reset", "read", lambda k: {"key": k}, ADMIN),
    ],
    ("openclaw", "sessions.patch"): [
        openclaw("sessions.patch", "read", lambda k: {"key": k, "label": "x"}, ADMIN),
    ],
    ("http", "/tools/invoke"): [SEND_TOOL, http_invoke_as_own()],
    ("http", "/v1/sessions"): [http_get(lambda k: "/v1/sessions", "own", own)],
    ("http", "/v1/sessions/{key:path}"): [
        http_get(lambda k: f"/v1/sessions/{k}", "read", caller),
        http_get(lambda k: "/v1/sessions/main", "own", own),
        http_call("DELETE", lambda k: f"/v1/sessions/{k}", "read", caller, {"force": True}),
        http_call("DELETE", lambda k: "/v1/sessions/agent:atlas:cron:x", "own", own),
        http_call("PATCH", lambda k: f"/v1/sessions/{k}", "read", caller, {"label": "x"}),
    ],
    **{("http", f"/v1/sessions/{{key:path}}/{verb}"): [
        http_call("POST", lambda k, v=verb: f"/v1/sessions/{k}/{v}", "read", caller),
    ] for verb in ("reset", "archive", "unarchive")},
    ("http", "/v1/sessions/{key:path}/messages"): [
        http_get(lambda k: f"/v1/sessions/{k}/messages", "read", caller),
        http_get(lambda k: "/v1/sessions/main/messages", "own", own),
    ],
    ("cli", "send"): [cli("address", lambda k: ["send", k, "hi", "--timeout", "0"])],
    ("cli", "spawn"): [cli("parent", lambda k: ["spawn", "atlas", "t", "--parent", k])],
    ("cli", "sessions history"): [cli("read", lambda k: ["sessions", "history", k])],
    ("cli", "sessions show"): [cli("read", lambda k: ["sessions", "show", k], remote=False)],
    **{("cli", f"sessions {verb}"): [
        cli("read", lambda k, v=verb: ["sessions", v, k, "--reason", "probe"], remote=False)]
       for verb in ("delete", "reset", "archive", "unarchive")},
    ("cli", "mcp"): [cli_mcp_as_own()],
    ("mcp", "tools/call sessions_send"): [mcp_tool("sessions_send", "address", SEND)],
    ("mcp", "tools/call sessions_spawn"): [
        mcp_tool("sessions_spawn", "address", SPAWN_NAMED),
        mcp_tool("sessions_spawn", "parent", SPAWN_UNDER),
    ],
    ("mcp", "tools/call sessions_history"): [
        mcp_tool("sessions_history", "read", lambda k: {"sessionKey": k}),
    ],
    **{("mcp", f"tools/call {name}"): [mcp_tool(name, "read", args)]
       for name, args in LIFECYCLE_ARGS.items()},
    ("mcp", "resources/read"): [mcp_read_resource()],
    ("mcp", "X-Session-Key"): [mcp_as_own()],
    ("a2a", "SendMessage"): [a2a_send("address")],
    ("a2a", "SendStreamingMessage"): [a2a_send("address", streaming=True)],
    ("a2a", "ListTasks"): [a2a_list_tasks()],
    ("a2a", "X-Session-Key"): [a2a_as_own()],
    ("a2a", "REST /message:send"): [a2a_send("address", binding="HTTP+JSON")],
    ("a2a", "REST /message:stream"): [a2a_send("address", streaming=True, binding="HTTP+JSON")],
    ("a2a", "REST /tasks"): [a2a_list_tasks("HTTP+JSON")],
    ("page", "/send"): [
        page("address", lambda k: "/ui/send", page_send),
        # must-exist never creates: refused in every mode, like a read
        page("read", lambda k: "/ui/send", lambda k: page_send(k, must_exist=True)),
        page("own", lambda k: "/ui/send", lambda k: page_send("agent:atlas:main", as_caller=k)),
    ],
    ("page", "/doctor/plan"): [page("read", lambda k: f"/ui/doctor/plan?sessionKey={k}")],
    ("page", "/doctor/repair"): [page("read", lambda k: "/ui/doctor/repair",
                                      lambda k: {"sessionKey": k})],
    ("page", "/sessions/{key:path}"): [page("read", lambda k: f"/ui/sessions/{k}")],
    ("page", "/lifecycle/plan"): [
        page("read", lambda k: f"/ui/lifecycle/plan?action=delete&sessionKey={k}"),
    ],
    ("page", "/lifecycle/apply"): [
        page("read", lambda k: "/ui/lifecycle/apply",
             lambda k: {"action": "delete", "sessionKey": k, "force": "on"}),
        page("read", lambda k: "/ui/lifecycle/apply",
             lambda k: {"action": "reset", "sessionKey": k}),
    ],
    ("page", "/messages"): [page("read", lambda k: f"/ui/messages?key={k}")],
}  # fmt: skip

# Entry points that take no session reference, or create from a message's own origin by design.
EXEMPT: dict[str, set[str]] = {
    "tool": set(),
    # no reference / only drops a subscription / streams the audit log
    "ws": {"sessions.list", "sessions.unsubscribe", "audit.subscribe"},
    "openclaw": {"connect", "health", "sessions.list"},  # token auth, no session reference
    "http": {
        "/v1/status",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/channels/{channel}/inbound",
        "/v1/retention/prune",
    },
    "cli": {"sessions create"},  # creates on purpose (origin "cli")
    # no reference of their own (the caller's X-Session-Key is probed once, for all of them)
    "mcp": {"ping", "server/discover", "tools/list", "resources/list", "resources/templates/list"},
    # task ids (a task's run is read through its session's visibility: test_a2a.py), push
    # notifications and the extended card (not served)
    "a2a": {
        "GetTask",
        "CancelTask",
        "SubscribeToTask",
        "GetExtendedAgentCard",
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
        "REST /tasks/{id}",
        "REST /tasks/{id}:cancel",
        "REST /tasks/{id}:subscribe",
        "REST /tasks/{id}/pushNotificationConfigs",
        "REST /tasks/{id}/pushNotificationConfigs/{push_id}",
        "REST /extendedAgentCard",
    },
    # sign-in, assets, views that list without a reference (filters are not addresses),
    # and the not-found page for any other path
    "page": {
        "/",
        "/signin",
        "/signout",
        "/sessions",
        "/audit",
        "/doctor",
        "/static/{name}",
        "/{rest:path}",
    },
}

# ---------------------------------------------------------------- enumerating the surfaces

CLI_REFERENCE_PARAMS = {"key", "parent", "session_key", "session"}


def _cli_commands(command: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf commands by their full name ("sessions show"); typer groups have `commands`."""
    if hasattr(command, "commands"):
        found: dict[str, Any] = {}
        for name, sub in command.commands.items():
            found.update(_cli_commands(sub, f"{prefix} {name}".strip()))
        return found
    return {prefix: command}


def cli_entry_points() -> set[str]:
    """CLI commands with a parameter that names a session."""
    commands = _cli_commands(typer.main.get_command(cli_app))
    return {
        name
        for name, command in commands.items()
        if any(p.name in CLI_REFERENCE_PARAMS for p in command.params)
    }


def mcp_entry_points() -> set[str]:
    """The MCP methods served, each addressing tool as its own `tools/call`, and the header."""
    server = build_mcp_server(None)  # type: ignore[arg-type]  # listing needs no gateway
    served = set(server._request_handlers) - {"tools/call"}
    tools = {f"tools/call {name}" for name, spec in TOOLS.items() if spec.addresses_session}
    return served | tools | {"X-Session-Key"}


def a2a_entry_points() -> set[str]:
    """The A2A JSON-RPC methods the SDK dispatches, its HTTP+JSON routes, the caller's header."""
    rest = {f"REST {r.path}" for r in create_rest_routes(None) if isinstance(r, Route)}  # type: ignore[arg-type]
    return set(JsonRpcDispatcher.METHOD_TO_MODEL) | rest | {"X-Session-Key"}


SURFACES: dict[str, Callable[[], set[str]]] = {
    "tool": lambda: {name for name, spec in TOOLS.items() if spec.addresses_session},
    "ws": lambda: {"connect", *METHODS},
    "openclaw": lambda: {"connect", *OPENCLAW_METHODS},
    "http": lambda: {r.path for r in http_routes() if isinstance(r, Route)},
    "cli": cli_entry_points,
    "mcp": mcp_entry_points,
    "a2a": a2a_entry_points,
    "page": lambda: {r.path for r in page_routes()},
}


def test_every_entry_point_taking_a_session_reference_has_a_probe() -> None:
    for surface, enumerate_entry_points in SURFACES.items():
        wanted = enumerate_entry_points() - EXEMPT[surface]
        probed = {name for s, name in PROBES if s == surface}
        assert wanted == probed, f"{surface}: unprobed {wanted - probed}, stale {probed - wanted}"
    assert {surface for surface, _ in PROBES} <= set(SURFACES)


# ---------------------------------------------------------------- every probe, every mode


async def _session_keys(gw: Any) -> set[str]:
    page = await gw.gateway.store.list_sessions(limit=500)
    return {s.key for s in page.sessions}


def _check(probe: Probe, mode: Any, key: str, answer: dict[str, Any], created: set[str]) -> None:
    if probe.intent == "address" and mode is not False:
        assert answer["ok"] is True, answer
        assert created == {key}, created
        return
    assert answer["ok"] is False, answer
    assert answer["error"]["code"] == "SESSION_NOT_FOUND", answer
    assert answer["error"]["details"]["canonicalKey"] == key, answer
    assert created == set(), created


@pytest.mark.parametrize("mode", [True, False, "warn"], ids=["true", "false", "warn"])
async def test_each_probe_creates_only_what_its_intent_allows(
    serve: Any, tmp_path: Path, mode: Any
) -> None:
    data = config_data(tmp_path, gateway__sessions={"createOnMiss": mode})
    data["gateway"]["tools"] = {"allow": sorted(TOOLS)}  # the lifecycle tools too
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(data), encoding="utf-8")
    numbers = itertools.count(6596143250)
    async with serve(parse_config(data, "test")) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            ctx = Context(gw, http, config_path)
            for (surface, name), probes in PROBES.items():
                for probe in probes:
                    # the incident's shape: a direct key atlas never uses (dmScope main)
                    key = f"agent:atlas:telegram:atlas:direct:{next(numbers)}"
                    before = await _session_keys(gw)
                    answer = await probe.call(ctx, key)
                    created = await _session_keys(gw) - before
                    try:
                        _check(probe, mode, key, answer, created)
                    except AssertionError as exc:
                        raise AssertionError(f"{surface} {name} ({probe.intent}): {exc}") from None
