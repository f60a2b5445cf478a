"""One id per request, shared by the access log, error bodies and the server log.

A surface calls `begin_request()` when a request (HTTP request, WebSocket frame,
MCP call) starts; anything below it reads `current_request_id()`.
"""

from __future__ import annotations

import contextvars
import itertools
import secrets

__all__ = ["begin_request", "current_request_id"]

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sessiongate_request_id", default=None
)


# A random prefix per process and a counter: unique across processes and restarts, and
# without a system call per request (os.urandom was ~3% of a send's CPU).
_PREFIX = secrets.token_hex(4)
_counter = itertools.count(1)


def begin_request(request_id: str | None = None) -> str:
    """Start a request in this context: use `request_id` (e.g. from a header) or a fresh one."""
    value = request_id or f"{_PREFIX}{next(_counter):08x}"
    _current.set(value)
    return value


def current_request_id() -> str | None:
    """The id of the request this code runs for, if a surface began one."""
    return _current.get()
