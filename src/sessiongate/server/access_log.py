"""The edge of the HTTP surface: one access-log line per request, its request id in an
``X-Request-Id`` header, and the surface's one catch-all.

A caller's own ``X-Request-Id`` (up to 64 printable characters) is kept, so an
id can follow a request across services.

Routes raise; nothing below this middleware catches for them. What reaches it is
answered here (and so logged with the status it got): a `SessionGateError` in its
wire form and HTTP status (or in the dialect a route chose with `speak_errors`, e.g.
OpenClaw's shapes on ``/tools/invoke`` under ``gateway.compat.openclaw``); the
framework's own refusals (no route, wrong method) as the matching error; a client
that left (`ClientDisconnect`) with a bare 400 nobody reads; anything else as
``INTERNAL_ERROR`` carrying the request id that the log shows with the traceback
(`sessiongate.catchall.internal_error`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessiongate.catchall import internal_error
from sessiongate.errors import SessionGateError, UnauthorizedError, error_for_http_status
from sessiongate.request_ids import begin_request
from sessiongate.server.wire_response import WireResponse
from sessiongate.tracing import current_trace_id

__all__ = [
    "AccessLogMiddleware",
    "error_response",
    "session_gate_error_response",
    "speak_errors",
]

log = structlog.get_logger("sessiongate.access")

MAX_REQUEST_ID_CHARS = 64
ERROR_DIALECT = "sessiongate.error_dialect"  # the scope key `speak_errors` sets

ErrorDialect = Callable[[SessionGateError], Response]


def _caller_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text: str = bytes(value).decode("latin-1").strip()
            if 0 < len(text) <= MAX_REQUEST_ID_CHARS and text.isprintable():
                return text
    return None


def session_gate_error_response(error: SessionGateError) -> JSONResponse:
    """An error in its one wire form, with its HTTP status (a 401 names the scheme)."""
    response = WireResponse(error.to_wire(), status_code=error.http_status)
    if isinstance(error, UnauthorizedError):
        response.headers["www-authenticate"] = "Bearer"
    return response


def speak_errors(scope: Scope, dialect: ErrorDialect) -> None:
    """Have the edge answer this request's refusals with `dialect` (not the wire form)."""
    scope[ERROR_DIALECT] = dialect


def error_response(scope: Scope, exc: Exception) -> Response:
    """The answer to a request that raised `exc` (see the module docstring)."""
    if isinstance(exc, SessionGateError):
        dialect: ErrorDialect = scope.get(ERROR_DIALECT, session_gate_error_response)
        return dialect(exc)
    where = f"{scope['method']} {scope['path']}"
    if isinstance(exc, HTTPException):
        error = error_for_http_status(exc.status_code, f"{where}: {exc.detail}")
        return session_gate_error_response(error)
    if isinstance(exc, ClientDisconnect):  # the client left: nobody reads this answer
        return Response(status_code=400)
    return session_gate_error_response(internal_error(exc, "http", where))


def _trace_fields() -> dict[str, str]:
    """The request's trace id, when traces are on (to find the trace from the log line)."""
    trace_id = current_trace_id()
    return {"trace_id": trace_id} if trace_id else {}


class AccessLogMiddleware:
    """Begins a request id per HTTP request and WebSocket connection; answers what an HTTP
    route raised; logs each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = begin_request(_caller_request_id(scope))
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # the HTTP surface's one catch-all
            if status:  # the answer is on its way already: the client sees it cut off
                internal_error(exc, "http", f"{scope['method']} {scope['path']} (answering)")
                return
            await error_response(scope, exc)(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status or 500,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                request_id=request_id,
                **_trace_fields(),
            )
