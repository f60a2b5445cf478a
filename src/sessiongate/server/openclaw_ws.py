"""OpenClaw's gateway protocol v3 (operator subset) on the WebSocket at ``/``.

For OpenClaw's CLI (``openclaw gateway call …``, ``openclaw agent``) and scripts
written against it. The server opens with a ``connect.challenge`` event; the
client's ``connect`` (token auth; device identity accepted, not checked) gets
``hello-ok``; then ``tick`` events every ``tickIntervalMs`` keep the client from
closing on long runs. Methods: ``health``, ``sessions.list``, ``sessions.resolve``,
``chat.history`` (scope ``operator.read``), ``chat.send``, ``agent`` (scope
``operator.write``). Each is a thin translation onto `Gateway.invoke`: the
resolver, createOnMiss, visibility and the audit decide exactly as on every other
surface. Anything else is refused with a message naming what is supported.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from sessiongate import __version__
from sessiongate.errors import (
    ForbiddenError,
    InvalidRequestError,
    RunFailedError,
    RunTimeoutError,
    SessionGateError,
    UnauthorizedError,
)
from sessiongate.gateway import Gateway
from sessiongate.keys import main_key
from sessiongate.outcomes import SendOutcome
from sessiongate.resolver import Caller
from sessiongate.runtime.runs import RunEvent, RunStream
from sessiongate.server.failed_auth import FailedAuthLimiter, client_address
from sessiongate.server.openclaw_wire import (
    ADMIN,
    PROTOCOL,
    READ,
    SCOPE_GRANTS,
    WRITE,
    AgentParams,
    ChatHistoryParams,
    ChatSendParams,
    ConnectParams,
    DeleteParams,
    ListParams,
    PatchParams,
    ResetParams,
    ResolveParams,
    RunFrames,
    error_object,
    history_message,
    list_limit,
    now_ms,
    session_id,
    session_row,
)
from sessiongate.server.ws import (
    POLICY_VIOLATION,
    ClientGone,
    Connection,
    RequestFrame,
    answering,
    receive_request,
    serve_connection,
)
from sessiongate.tools.args import (
    DeleteArgs,
    HistoryArgs,
    ListArgs,
    PatchArgs,
    ResetArgs,
    SendArgs,
    SessionArgs,
)
from sessiongate.tools.base import validate_args

__all__ = ["OPENCLAW_METHODS", "openclaw_websocket_endpoint"]

log = structlog.get_logger("sessiongate.openclaw")

TICK_INTERVAL_MS = 30_000
CHAT_STREAM_SECONDS = 600.0  # how long chat.send forwards its run's events at most
ENTRY_POINT = "openclaw"


class OpenClawConnection(Connection):
    """A connection speaking OpenClaw's frames: its error objects, its scopes."""

    def __init__(self, websocket: WebSocket, gateway: Gateway) -> None:
        super().__init__(websocket, gateway)
        self.scopes: frozenset[str] = frozenset()

    async def fail(self, request_id: Any, error: SessionGateError) -> None:
        frame = {"type": "res", "id": request_id, "ok": False, "error": error_object(error)}
        await self.send(frame)

    def background(self, work: Awaitable[None]) -> asyncio.Future[None]:
        """Run `work` for as long as the connection is open."""
        task = asyncio.ensure_future(work)
        self._track(task)
        return task

    async def handle(self, request: RequestFrame) -> dict[str, Any]:
        scope, handler = _method(request.method)
        if scope not in self.scopes:
            raise _missing_scope(scope, self.scopes)
        return await handler(self, request)

    @property
    def operator(self) -> Caller:
        assert self.caller is not None
        return self.caller


Handler = Callable[[OpenClawConnection, RequestFrame], Awaitable[dict[str, Any]]]


def _method(name: str) -> tuple[str, Handler]:
    entry = OPENCLAW_METHODS.get(name)
    if entry is None:
        raise InvalidRequestError(
            f"unknown method: {name} (sessiongate serves OpenClaw's operator methods "
            f"{', '.join(sorted(OPENCLAW_METHODS))}; see docs/migrating-from-openclaw.md)",
            details={"methods": sorted(OPENCLAW_METHODS)},
        )
    return entry


def _missing_scope(scope: str, granted: frozenset[str]) -> ForbiddenError:
    return ForbiddenError(
        f"missing scope: {scope} (this connection has {', '.join(sorted(granted)) or 'none'}; "
        f"connect with scopes [{scope!r}])",
        details={"scope": scope, "granted": sorted(granted)},
    )


async def _health(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    started = time.perf_counter()
    config = conn.gateway.config
    count = await conn.gateway.count_sessions()
    default = config.default_agent.id
    return {
        "ok": True,
        "ts": now_ms(),
        "durationMs": int((time.perf_counter() - started) * 1000),
        "defaultAgentId": default,
        "agents": [{"agentId": a.id, "isDefault": a.id == default} for a in config.agents.entries],
        "sessions": {"count": count},
    }


async def _sessions_list(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    params = validate_args(ListParams, request.params, "sessions.list")
    compat = conn.gateway.config.gateway.compat.openclaw
    args = ListArgs.model_construct(
        limit=list_limit(params.limit, compat),
        agent_id=params.agent_id,
        active_minutes=params.active_minutes,
    )
    listing = await conn.gateway.list_sessions(args, conn.operator)
    rows = [session_row(s.to_wire()) for s in listing.sessions]
    default = conn.gateway.config.default_agent.id
    return {
        "ts": now_ms(),
        "count": len(rows),
        "sessions": rows,
        "nextCursor": listing.next_cursor,
        "defaults": {"defaultAgentId": default, "mainSessionKey": main_key(default)},
    }


async def _sessions_resolve(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    params = validate_args(ResolveParams, request.params, "sessions.resolve")
    args = SessionArgs.model_construct(session_key=params.key)
    resolution = await conn.gateway.resolve(args, conn.operator)
    return {"ok": True, "key": resolution.key}


async def _chat_history(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    params = validate_args(ChatHistoryParams, request.params, "chat.history")
    args = HistoryArgs.model_construct(session_key=params.session_key, limit=params.limit)
    history = await conn.gateway.history(args, conn.operator)
    return {
        "sessionKey": history.session_key,
        "sessionId": session_id(history.session_key),
        "messages": [history_message(m.to_wire()) for m in history.messages],
        "thinkingLevel": "off",
    }


async def _send(
    conn: OpenClawConnection,
    key: str,
    message: str,
    idempotency_key: str | None,
    wait: float,
    stream: RunStream | None = None,
) -> SendOutcome:
    """A send of OpenClaw's fields (validated already by its own model)."""
    args = SendArgs.model_construct(
        session_key=key, message=message, timeout_seconds=wait, idempotency_key=idempotency_key
    )
    return await conn.gateway.send(args, conn.operator, stream)


async def _chat_send(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    params = validate_args(ChatSendParams, request.params, "chat.send")
    stream = RunStream()
    try:
        accepted = await _send(
            conn, params.session_key, params.message, params.idempotency_key, 0, stream
        )
    except BaseException:
        stream.close()
        raise
    run_id = params.idempotency_key or accepted.run_id
    if accepted.duplicate:
        stream.close()
        return {"runId": run_id, "status": "in_flight"}
    frames = RunFrames(run_id, accepted.session_key)

    async def forward() -> None:
        with contextlib.suppress(ClientGone):
            await stream.follow(accepted, _emitter(conn, frames), CHAT_STREAM_SECONDS)

    # unsubscribed when forwarding ends, even if the connection closes before it starts
    conn.background(forward()).add_done_callback(lambda _: stream.close())
    return {"runId": run_id, "status": "started"}


def _emitter(conn: OpenClawConnection, frames: RunFrames) -> Callable[[RunEvent], Awaitable[None]]:
    """Sends each run event as OpenClaw's `agent` and `chat` events."""

    async def emit(event: RunEvent) -> None:
        for name, payload in frames.frames(event):
            await conn.event(name, payload)

    return emit


async def _agent(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    """Send a message, answer `accepted` at once, stream the run, answer again at its end."""
    params = validate_args(AgentParams, request.params, "agent")
    if params.deliver:
        raise InvalidRequestError(
            "agent: deliver is not supported: sessiongate has no outbound channels to deliver "
            "replies to (leave --deliver off; the reply comes back to you)",
            details={"argument": "deliver"},
        )
    key, idempotency_key = await _agent_target(conn, params), params.idempotency_key
    with RunStream() as stream:
        accepted = await _send(conn, key, params.message, idempotency_key, 0, stream)
        run_id = idempotency_key or accepted.run_id
        frames = RunFrames(run_id, accepted.session_key)
        await _accepted(conn, request.id, run_id)
        if accepted.duplicate:  # the same run again: its outcome, never a second run
            stream.close()
            wait = min(params.timeout, 600)
            outcome = await _send(conn, key, params.message, idempotency_key, wait)
        else:
            outcome = await stream.follow(accepted, _emitter(conn, frames), params.timeout)
    return _final(frames, outcome, params.message)


async def _agent_target(conn: OpenClawConnection, params: AgentParams) -> str:
    """The key `agent` addresses: sessionKey; else the session an OpenClaw sessionId names
    (never a new one); else the conversation with `to` under session.dmScope; else a main."""
    if params.session_key is None and params.session_id is not None:
        return await conn.gateway.key_for_openclaw_id(params.session_id)
    if params.session_key is None and params.to is not None:
        return conn.gateway.key_for_recipient(
            params.agent_id, params.to, params.channel, params.account_id
        )
    return params.target()


async def _sessions_delete(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    params = validate_args(DeleteParams, request.params, "sessions.delete")
    if not params.delete_transcript:
        raise InvalidRequestError(
            "sessions.delete: deleteTranscript false is not supported: sessiongate erases the "
            "transcript with the session (to keep it, reset the session instead)",
            details={"argument": "deleteTranscript"},
        )
    args = DeleteArgs.model_construct(
        session_key=params.key, force=params.force, reason=params.reason
    )
    erasure = await conn.gateway.delete(args, conn.operator)
    return {"ok": True, "key": erasure.tombstone.key, "deleted": True, **erasure.to_wire()}


async def _sessions_reset(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    params = validate_args(ResetParams, request.params, "sessions.reset")
    args = ResetArgs.model_construct(
        session_key=params.key, old_transcript="archive", reason=params.reason
    )
    outcome = await conn.gateway.reset(args, conn.operator)
    entry = session_row(outcome.session.to_wire())
    return {"ok": True, "key": outcome.session.key, "entry": entry, **outcome.to_wire()}


async def _sessions_patch(conn: OpenClawConnection, request: RequestFrame) -> dict[str, Any]:
    params = validate_args(PatchParams, request.params, "sessions.patch")
    if "label" not in params.model_fields_set:
        raise InvalidRequestError(
            "sessions.patch: nothing to change (sessiongate keeps only a session's label)",
            details={"argument": "label", "problems": ["label: required"]},
        )
    args = PatchArgs.model_construct(session_key=params.key, label=params.label, reason=None)
    shown = await conn.gateway.patch(args, conn.operator)
    return {"ok": True, "key": shown.session.key, "entry": session_row(shown.session.to_wire())}


async def _accepted(conn: OpenClawConnection, request_id: Any, run_id: str) -> None:
    payload = {"runId": run_id, "status": "accepted", "acceptedAt": now_ms()}
    await conn.respond(request_id, payload)


def _final(frames: RunFrames, outcome: SendOutcome, prompt: str) -> dict[str, Any]:
    details = {"runId": frames.run_id, "sessionKey": frames.session_key}
    if outcome.status in ("timeout", "accepted"):
        raise RunTimeoutError(
            f"run {frames.run_id} in {frames.session_key} did not finish in time; it goes on "
            "in the background (read its reply with chat.history)",
            details=details,
        )
    if outcome.status != "ok":
        error = outcome.error or {}
        message = error.get("message") or error.get("code") or "the run failed"
        raise RunFailedError(f"run {frames.run_id} failed: {message}", details=details)
    return frames.final(outcome.reply, prompt)


OPENCLAW_METHODS: dict[str, tuple[str, Handler]] = {
    "health": (READ, _health),
    "sessions.list": (READ, _sessions_list),
    "sessions.resolve": (READ, _sessions_resolve),
    "chat.history": (READ, _chat_history),
    "chat.send": (WRITE, _chat_send),
    "agent": (WRITE, _agent),
    "sessions.delete": (ADMIN, _sessions_delete),
    "sessions.reset": (ADMIN, _sessions_reset),
    "sessions.patch": (ADMIN, _sessions_patch),
}
EVENTS = ["connect.challenge", "agent", "chat", "tick"]


def _check_connect(conn: OpenClawConnection, request: RequestFrame) -> ConnectParams:
    if request.method != "connect":
        raise UnauthorizedError(
            f"the first request must be 'connect', got {request.method!r}", details={}
        )
    params = validate_args(ConnectParams, request.params, "connect")
    if not params.min_protocol <= PROTOCOL <= params.max_protocol:
        raise InvalidRequestError(
            f"protocol mismatch: sessiongate speaks OpenClaw protocol {PROTOCOL}, the client "
            f"{params.min_protocol}..{params.max_protocol}",
            details={"protocol": PROTOCOL},
        )
    if params.role != "operator":
        raise ForbiddenError(
            f"role {params.role!r} is not served: sessiongate speaks OpenClaw's operator "
            "protocol only (no nodes, no pairing)",
            details={"role": params.role},
        )
    limiter: FailedAuthLimiter = conn.websocket.app.state.failed_auth
    client = client_address(conn.websocket.client)
    limiter.check(client, "openclaw-ws", conn.websocket.app.state.token, params.auth.token)
    conn.budget.credential = params.auth.token  # the per-token request rate counts here too
    conn.websocket.app.state.connection_guard.authenticated(conn.websocket.client)
    return params


def _hello(conn: OpenClawConnection, params: ConnectParams) -> dict[str, Any]:
    scopes = sorted(s for s in params.scopes if s in SCOPE_GRANTS)
    return {
        "type": "hello-ok",
        "protocol": PROTOCOL,
        "server": {"version": __version__, "connId": str(uuid.uuid4())},
        "features": {"methods": sorted(OPENCLAW_METHODS), "events": EVENTS},
        "auth": {"role": "operator", "scopes": scopes},
        "policy": {
            "maxPayload": conn.gateway.config.gateway.max_body_bytes,
            "maxBufferedBytes": 4 * conn.gateway.config.gateway.max_body_bytes,
            "tickIntervalMs": TICK_INTERVAL_MS,
        },
    }


async def _handshake(conn: OpenClawConnection) -> bool:
    """Challenge, then answer the client's `connect`; only a valid one opens the connection
    (anything else is answered and the connection closed)."""
    challenge = {"nonce": str(uuid.uuid4()), "ts": now_ms()}
    await conn.send({"type": "event", "event": "connect.challenge", "payload": challenge})
    connect_by = asyncio.get_running_loop().time() + conn.budget.limits.connect_timeout_seconds
    request = await receive_request(conn, connect_by)
    if request is not None:
        async with answering(conn, request.id, "connect") as answer:
            await _open(conn, request)
        if answer.error is None and conn.caller is not None:
            return True
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await conn.websocket.close(POLICY_VIOLATION, "connect refused")
    return False


async def _open(conn: OpenClawConnection, request: RequestFrame) -> None:
    """Open the connection for a valid `connect` (anything else raises: `answering`
    answers it and the connection closes)."""
    params = _check_connect(conn, request)
    conn.scopes = frozenset(g for s in params.scopes for g in SCOPE_GRANTS.get(s, ()))
    await conn.respond(request.id, _hello(conn, params))
    conn.caller = Caller(None, ENTRY_POINT)


async def _tick(conn: OpenClawConnection) -> None:
    """OpenClaw's client closes after two tick intervals of silence: keep talking."""
    with contextlib.suppress(ClientGone):
        while True:
            await asyncio.sleep(TICK_INTERVAL_MS / 1000)
            await conn.event("tick", {"ts": now_ms()})


async def _serve(conn: OpenClawConnection) -> None:
    if not await _handshake(conn):
        return
    conn.background(_tick(conn))
    while True:
        request = await receive_request(conn)
        if request is not None:
            await conn.dispatch(request)


async def openclaw_websocket_endpoint(websocket: WebSocket) -> None:
    """Serve one OpenClaw client until it leaves."""
    await serve_connection(OpenClawConnection(websocket, websocket.app.state.gateway), _serve)
