"""WebSocket surface: `/ws`, JSON request/response frames plus streamed run events.

Frames: ``{type: "req", id, method, params}`` → ``{type: "res", id, ok, payload | error}``;
server events ``{type: "event", event, payload, seq}``. The first request must be
``connect {token, sessionKey?}``. A malformed frame gets an error ``res`` and the
connection stays open; requests run concurrently, each answered by its id.

Every request frame is answered: `answering` is the surface's one catch-all
(typed errors → their wire form; anything else → ``INTERNAL_ERROR`` with the
request id that the log shows next to the traceback). Frames are decoded by
`sessiongate.wire.decode_json` (depth, Unicode, NUL) before authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import structlog
from pydantic import Field, model_validator
from starlette.websockets import WebSocket, WebSocketDisconnect

from sessiongate import __version__
from sessiongate.catchall import internal_error
from sessiongate.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    SessionGateError,
    UnauthorizedError,
)
from sessiongate.fields import MessageText, SessionRef, WaitSeconds
from sessiongate.gateway import Gateway
from sessiongate.outcomes import Outcome
from sessiongate.request_ids import begin_request
from sessiongate.resolver import Caller
from sessiongate.runtime.runs import RunEvent, RunStream
from sessiongate.server.auth import check_token_or_cookie
from sessiongate.server.failed_auth import FailedAuthLimiter, client_address
from sessiongate.server.limits import (
    CLOSE_CONNECT_TIMEOUT,
    CLOSE_SEND_QUEUE_FULL,
    TAKE_TEXT,
    WRITE_NOW,
    WsBudget,
)
from sessiongate.server.requests import same_origin
from sessiongate.tools.args import (
    DeleteArgs,
    PatchArgs,
    ResetArgs,
    SendArgs,
    SessionArgs,
    StatusArgs,
    must_exist_as_create_on_miss,
)
from sessiongate.tools.base import ToolArgs, validate_args
from sessiongate.tracing import enabled as tracing_enabled
from sessiongate.tracing import request_span
from sessiongate.wire import check_json, check_text, dump_json, load_json

__all__ = [
    "ClientGone",
    "Connection",
    "RequestFrame",
    "answering",
    "receive_request",
    "serve_connection",
    "websocket_endpoint",
]

log = structlog.get_logger("sessiongate.ws")

POLICY_VIOLATION = 1008
FINAL_EVENTS = ("run.completed", "run.failed")
MAX_ECHOED_ID = 128  # a frame id longer than this is not echoed in an error


class ClientGone(Exception):
    """The client went away while we answered (nothing left to answer)."""


class RequestFrame(ToolArgs):
    type: str = Field(pattern="^req$")
    id: str | int
    method: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = {}


class ConnectParams(ToolArgs):
    token: str | None = None
    session_key: str | None = None


class AgentParams(ToolArgs):
    """``agent``: a send whose run is streamed; `timeout_seconds` bounds the streaming."""

    session_key: SessionRef
    message: MessageText
    create_on_miss: bool | None = None
    must_exist: bool | None = None  # true: the same as createOnMiss false
    timeout_seconds: WaitSeconds = 30

    @model_validator(mode="after")
    def _must_exist(self) -> AgentParams:
        self.create_on_miss = must_exist_as_create_on_miss(self.must_exist, self.create_on_miss)
        return self

    def send_args(self) -> SendArgs:
        """The send (answered at once; the run's events follow), without validating again
        (a copy of a constructed template: `model_construct` itself cost 6 us a turn)."""
        update = {
            "session_key": self.session_key,
            "message": self.message,
            "create_on_miss": self.create_on_miss,
        }
        return _STREAMED_SEND.model_copy(update=update)


_STREAMED_SEND = SendArgs.model_construct(message="", timeout_seconds=0)


class InvokeParams(ToolArgs):
    tool: str
    args: dict[str, Any] = {}


Handler = Callable[["Connection", dict[str, Any]], Awaitable[dict[str, Any]]]
C = TypeVar("C", bound="Connection")


class Connection:
    """One client connection: its caller identity, its event sequence, its open requests."""

    def __init__(self, websocket: WebSocket, gateway: Gateway) -> None:
        self.websocket = websocket
        self.gateway = gateway
        self.caller: Caller | None = None
        self._seq = 0
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscriptions: dict[str, Callable[[], None]] = {}
        self.budget = WsBudget(gateway.config.gateway.limits, websocket.app.state.rate_limiter)
        self.dropped = False
        self._write_now: Callable[[str, bool], bool] | None = websocket.scope.get(
            "extensions", {}
        ).get(WRITE_NOW)
        self._take_text: Callable[[Callable[[str], bool] | None], None] | None = None
        self._context = contextvars.Context()

    def take_frames(self) -> None:
        """Have the protocol hand this connection its text frames as they arrive (once it is
        connected) rather than queue each for the receive loop (`offer`)."""
        take_text = self.websocket.scope.get("extensions", {}).get(TAKE_TEXT)
        if take_text is not None:
            self._context = contextvars.copy_context()  # the connection's (its trace span)
            self._take_text = take_text
            take_text(self.offer)

    def offer(self, text: str) -> bool:
        """Take a text frame from the protocol: a well-formed request that the connection's
        budgets admit is dispatched now (True); anything else is left to the receive loop
        (False), which answers it as ever — and holds back reading while it cannot."""
        if self._send_lock.locked() or not self.budget.can_start_now():
            return False
        try:
            request = _parse_frame(text, self.gateway.config.gateway.max_body_bytes)
        except _BadFrame:
            return False
        self.budget.start_request()
        answer = self._answer(request)
        self._track(asyncio.create_task(answer, context=self._context.copy()))
        return True

    async def send(self, frame: dict[str, Any], flush: bool = False) -> None:
        """Send one frame (`flush`: written now, not at the end of the event-loop step)."""
        pending = self.send_now(frame, flush)
        if pending is not None:
            await pending

    def send_now(self, frame: dict[str, Any], flush: bool = False) -> Awaitable[None] | None:
        """Frame `frame` at once when the protocol can (no sender waiting before it): None;
        else what to await — the ASGI send, which waits for a slow reader, or the close of
        a reader over its budget."""
        text = dump_json(frame)
        size = len(text)
        if not self.budget.queue(size):
            return self._refuse_slow_reader()
        write_now = self._write_now
        if write_now is not None and not self._send_lock.locked():
            try:
                written = write_now(text, flush)
            except (RuntimeError, OSError) as exc:
                self.budget.sent(size)
                raise ClientGone from exc
            if written:
                self.budget.sent(size)
                return None
        return self._send_queued(text, size)

    async def _send_queued(self, text: str, size: int) -> None:
        try:
            async with self._send_lock:
                await self.websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise ClientGone from exc
        finally:
            self.budget.sent(size)

    async def _refuse_slow_reader(self) -> None:
        await self._drop_slow_reader()
        raise ClientGone(CLOSE_SEND_QUEUE_FULL[0])

    async def _drop_slow_reader(self) -> None:
        """Close a connection whose reader fell too far behind (once)."""
        if self.dropped:
            return
        self.dropped = True
        self.gateway.metrics.shed("send_queue_full")
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.websocket.close(*CLOSE_SEND_QUEUE_FULL)

    async def respond(self, request_id: Any, payload: dict[str, Any]) -> None:
        """Answer a request; its frame (the last a request writes) goes out at once, with
        any written before it, rather than after the request's own bookkeeping."""
        frame = {"type": "res", "id": request_id, "ok": True, "payload": payload}
        await self.send(frame, flush=True)

    async def fail(self, request_id: Any, error: SessionGateError) -> None:
        frame = {"type": "res", "id": request_id, "ok": False, "error": error.to_wire()["error"]}
        await self.send(frame)

    async def event(self, event: str, payload: dict[str, Any]) -> None:
        await self.send(self._event_frame(event, payload))

    def _event_frame(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """An event's frame, numbered in the order frames are sent."""
        self._seq += 1
        return {"type": "event", "event": event, "payload": payload, "seq": self._seq}

    async def dispatch(self, request: RequestFrame) -> None:
        """Answer `request` concurrently, unless the connection has too many in flight."""
        refusal = self.budget.start_request()
        if refusal is not None:
            await self.fail(request.id, refusal)
            return
        self._track(asyncio.create_task(self._answer(request)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forward(self, event: RunEvent) -> None:
        """Send a run event to this client (from a listener, which must not block)."""
        payload = {k: v for k, v in event.items() if k != "event"}
        self._track(asyncio.create_task(self._send_event(event["event"], payload)))

    def relay(self, event: RunEvent) -> Awaitable[None] | None:
        """Send a run event to this client now (a streamed send's events, in order): None
        when it was framed at once, else what to await (`RunStream.follow`'s emit)."""
        payload = {k: v for k, v in event.items() if k != "event"}
        return self.send_now(self._event_frame(event["event"], payload))

    def forward_audit(self, event: dict[str, Any]) -> None:
        """Send an audit event to this client (from the audit log, which must not block)."""
        self._track(asyncio.create_task(self._send_event("audit", event)))

    async def _send_event(self, name: str, payload: dict[str, Any]) -> None:
        with contextlib.suppress(ClientGone):
            await self.event(name, payload)

    async def handle(self, request: RequestFrame) -> dict[str, Any]:
        """The payload that answers `request` (this protocol's methods)."""
        handler = METHODS.get(request.method)
        if handler is None:
            raise InvalidRequestError(
                f"unknown method {request.method!r}",
                details={"methods": sorted(METHODS)},
            )
        return await handler(self, request.params)

    async def _answer(self, request: RequestFrame) -> None:
        try:
            async with answering(self, request.id, request.method):
                if request.method == "connect":
                    raise InvalidRequestError("already connected")
                await self.respond(request.id, await self.handle(request))
        finally:
            self.budget.finish_request()

    async def close(self) -> None:
        if self._take_text is not None:
            self._take_text(None)
        for unsubscribe in self.subscriptions.values():
            unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(slots=True)
class Answer:
    """How a request inside `answering` ended: `error` is what it was answered with."""

    error: SessionGateError | None = None


def answering(conn: Connection, request_id: Any, where: str) -> AbstractAsyncContextManager[Answer]:
    """The WebSocket surface's one catch-all: whatever happens, request `request_id` is
    answered (unless the client has gone) and the connection stays usable. The `Answer`
    it yields tells the caller afterwards whether the request failed (a refused
    `connect` closes the connection)."""
    if tracing_enabled():
        return _traced(conn, request_id, where)
    return _Answering(conn, request_id, where)


@contextlib.asynccontextmanager
async def _traced(conn: Connection, request_id: Any, where: str) -> AsyncIterator[Answer]:
    with request_span(f"ws {where}", {"rpc.method": where}):
        async with _Answering(conn, request_id, where) as answer:
            yield answer


class _Answering:
    """`answering` as a plain class: a generator-based context manager per frame cost a
    turn more than the rest of its bookkeeping together."""

    __slots__ = ("answer", "conn", "request_id", "where")

    def __init__(self, conn: Connection, request_id: Any, where: str) -> None:
        self.conn, self.request_id, self.where = conn, request_id, where
        self.answer = Answer()

    async def __aenter__(self) -> Answer:
        begin_request()
        return self.answer

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None or isinstance(exc, ClientGone):
            return exc is not None
        if not isinstance(exc, Exception):
            return False  # cancellation and exits go on
        error = exc if isinstance(exc, SessionGateError) else internal_error(exc, "ws", self.where)
        self.answer.error = error
        with contextlib.suppress(ClientGone):
            await self.conn.fail(self.request_id, error)
        return True


async def _agent(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
    """Send a message into a session and stream its run events, then answer with the reply."""
    args = validate_args(AgentParams, params, "agent")
    assert conn.caller is not None
    with RunStream() as stream:
        accepted = await conn.gateway.send(args.send_args(), conn.caller, stream)
        outcome = await stream.follow(accepted, conn.relay, args.timeout_seconds)
    return outcome.to_wire()


async def _resolve(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
    args = validate_args(SessionArgs, params, "sessions.resolve")
    assert conn.caller is not None
    return (await conn.gateway.resolve(args, conn.caller)).to_wire()


async def _subscribe(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
    """Stream the run events of one session — from this process and every other one."""
    args = validate_args(SessionArgs, params, "sessions.subscribe")
    assert conn.caller is not None
    subscription = await conn.gateway.subscribe(args, conn.caller, conn.forward)
    key = subscription.session_key
    if key in conn.subscriptions:
        subscription.unsubscribe()
    else:
        conn.subscriptions[key] = subscription.unsubscribe
    return {"sessionKey": key, "subscribed": sorted(conn.subscriptions)}


async def _unsubscribe(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
    args = validate_args(SessionArgs, params, "sessions.unsubscribe")
    assert conn.caller is not None
    key = conn.gateway.canonical_key(args.session_key)
    unsubscribe = conn.subscriptions.pop(key, None)
    if unsubscribe is None:
        raise InvalidRequestError(
            f"not subscribed to {key!r}", details={"subscribed": sorted(conn.subscriptions)}
        )
    unsubscribe()
    return {"sessionKey": key, "subscribed": sorted(conn.subscriptions)}


async def _audit_subscribe(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
    """Stream audit events (refusals, warnings, creations on miss, repairs) as they happen."""
    validate_args(ToolArgs, params, "audit.subscribe")
    if "audit" not in conn.subscriptions:
        conn.subscriptions["audit"] = conn.gateway.audit.subscribe(conn.forward_audit)
    return {"subscribed": sorted(conn.subscriptions)}


def _tool_method(tool: str) -> Handler:
    async def method(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
        assert conn.caller is not None
        return await conn.gateway.invoke(tool, params, conn.caller)

    return method


async def _invoke(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
    args = validate_args(InvokeParams, params, "tools.invoke")
    assert conn.caller is not None
    return await conn.gateway.invoke(args.tool, args.args, conn.caller)


LifecycleOperation = Callable[[Any, Caller], Awaitable[Outcome]]


def _lifecycle_method(
    name: str, model: type[ToolArgs], operation: Callable[[Gateway], LifecycleOperation]
) -> Handler:
    """A lifecycle operation as a method: its params are the tool's arguments (an agent's
    connection needs the tool in gateway.tools.allow; an operator's does not)."""

    async def method(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
        assert conn.caller is not None
        args = validate_args(model, params, name)
        return (await operation(conn.gateway)(args, conn.caller)).to_wire()

    return method


LIFECYCLE_METHODS: dict[str, tuple[type[ToolArgs], Callable[[Gateway], LifecycleOperation]]] = {
    "sessions.delete": (DeleteArgs, lambda gw: gw.delete),
    "sessions.reset": (ResetArgs, lambda gw: gw.reset),
    "sessions.archive": (StatusArgs, lambda gw: gw.archive),
    "sessions.unarchive": (StatusArgs, lambda gw: gw.unarchive),
    "sessions.patch": (PatchArgs, lambda gw: gw.patch),
}

METHODS: dict[str, Handler] = {
    "agent": _agent,
    "sessions.list": _tool_method("sessions_list"),
    "sessions.history": _tool_method("sessions_history"),
    "sessions.resolve": _resolve,
    "sessions.subscribe": _subscribe,
    "sessions.unsubscribe": _unsubscribe,
    "audit.subscribe": _audit_subscribe,
    "tools.invoke": _invoke,
    **{name: _lifecycle_method(name, *entry) for name, entry in LIFECYCLE_METHODS.items()},
}


def _parse_frame(text: str, limit: int) -> RequestFrame:
    """The request in a frame; `_BadFrame` (with the id to answer) when there is none."""
    raw: Any = None
    try:
        if len(text.encode()) > limit:
            raise PayloadTooLargeError(f"frame over {limit} bytes", details={"limit": limit})
        raw = load_json(text, "frame")
        check_json(raw, "frame", text)
        return validate_args(RequestFrame, raw, "frame")
    except SessionGateError as exc:
        exc.details.setdefault("hint", 'send {"type":"req","id":1,"method":"...","params":{}}')
        raise _BadFrame(_echo_id(raw), exc) from None


class _BadFrame(Exception):
    def __init__(self, frame_id: Any, error: SessionGateError) -> None:
        super().__init__(error.message)
        self.frame_id = frame_id
        self.error = error


def _echo_id(raw: Any) -> Any:
    """The id of a frame that failed validation, so the client can match the error
    (only a plain string or integer: anything else is not echoed)."""
    frame_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(frame_id, str) and len(frame_id) <= MAX_ECHOED_ID:
        try:
            check_text(frame_id, "id")
        except InvalidRequestError:
            return None
        return frame_id
    if isinstance(frame_id, int) and not isinstance(frame_id, bool):
        return frame_id
    return None


async def _receive_text(websocket: WebSocket, deadline: float | None = None) -> str | None:
    """The next text frame (None for a binary one); before `connect`, by the connect deadline."""
    if deadline is None:
        message = await websocket.receive()
    else:
        async with asyncio.timeout_at(deadline):
            message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    return message.get("text")


async def receive_request(conn: Connection, deadline: float | None = None) -> RequestFrame | None:
    """The next well-formed request; a binary or malformed frame is answered with an error
    (the connection stays open) and gives None."""
    text = await _receive_text(conn.websocket, deadline)
    if text is None:
        await conn.fail(None, InvalidRequestError("binary frames are not supported"))
        return None
    try:
        return _parse_frame(text, conn.gateway.config.gateway.max_body_bytes)
    except _BadFrame as bad:
        await conn.fail(bad.frame_id, bad.error)
        return None


async def _handshake(conn: Connection, request: RequestFrame) -> None:
    """Answer the first request: only a valid `connect` opens the connection (anything
    else raises, and `answering` answers it)."""
    if request.method != "connect":
        raise UnauthorizedError(
            f"the first request must be 'connect', got {request.method!r}",
            details={
                "hint": 'send {"type":"req","id":1,"method":"connect","params":{"token":"…"}}'
            },
        )
    params = validate_args(ConnectParams, request.params, "connect")
    expected = conn.websocket.app.state.token
    limiter: FailedAuthLimiter = conn.websocket.app.state.failed_auth
    client = client_address(conn.websocket.client)
    limiter.refuse_if_locked(client, "ws")
    check = functools.partial(limiter.check, client, "ws")
    cookies = _page_cookies(conn)
    sign_ins = conn.gateway.page_sessions
    await check_token_or_cookie(expected, params.token, cookies, sign_ins, check)
    conn.budget.credential = params.token or expected  # a signed-in page stands for it
    conn.websocket.app.state.connection_guard.authenticated(conn.websocket.client)
    caller = await conn.gateway.caller_for(params.session_key, "ws")
    await conn.respond(request.id, {"protocol": 1, "version": __version__, **caller.to_wire()})
    conn.caller = caller


def _page_cookies(conn: Connection) -> dict[str, str]:
    """The cookies of a same-origin page (a cross-site page may not use the page's sign-in)."""
    if not same_origin(conn.websocket, absent=False):
        return {}
    return dict(conn.websocket.cookies)


async def _serve(conn: Connection) -> None:
    connect_by = asyncio.get_running_loop().time() + conn.budget.limits.connect_timeout_seconds
    while True:
        request = await receive_request(conn, connect_by if conn.caller is None else None)
        if request is None:
            continue
        if conn.caller is not None:
            await conn.dispatch(request)
            continue
        async with answering(conn, request.id, "connect") as answer:
            await _handshake(conn, request)
        if answer.error is not None:  # a refused connect closes the connection
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await conn.websocket.close(POLICY_VIOLATION, answer.error.code)
            return
        if conn.caller is not None:
            conn.take_frames()


async def serve_connection(conn: C, serve: Callable[[C], Awaitable[None]]) -> None:
    """Accept the socket and `serve` it until the client leaves (or misses its connect
    deadline: `serve` lets the TimeoutError of `receive_request` out)."""
    await conn.websocket.accept()
    try:
        await serve(conn)
    except (WebSocketDisconnect, ClientGone):
        pass
    except TimeoutError:
        conn.gateway.metrics.shed("connect_timeout")
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await conn.websocket.close(*CLOSE_CONNECT_TIMEOUT)
    finally:
        await conn.close()


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Serve one WebSocket connection until the client leaves."""
    await serve_connection(Connection(websocket, websocket.app.state.gateway), _serve)
