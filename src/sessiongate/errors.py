"""Every error sessiongate raises, with a stable code and one wire form.

The tree::

    SessionGateError                  SESSIONGATE_ERROR      500
    ├── ConfigError                   CONFIG_INVALID         400
    │   └── MissingExtraError         EXTRA_NOT_INSTALLED    400
    ├── InvalidSessionKeyError        INVALID_SESSION_KEY    400
    ├── InvalidRequestError           INVALID_REQUEST        400
    │   └── PayloadTooLargeError      PAYLOAD_TOO_LARGE      413
    ├── UnauthorizedError             UNAUTHORIZED           401
    ├── ForbiddenError                FORBIDDEN              403
    ├── SessionNotFoundError          SESSION_NOT_FOUND      404
    │   ├── AgentNotFoundError        AGENT_NOT_FOUND        404
    │   └── SessionDeletedError       SESSION_DELETED        404
    ├── ToolNotFoundError             TOOL_NOT_FOUND         404
    ├── RunNotFoundError              RUN_NOT_FOUND          404
    ├── ConflictError                 CONFLICT               409
    │   ├── SessionMovedError         SESSION_MOVED          409 (retryable)
    │   └── SessionResetError         SESSION_RESET          409 (retryable)
    ├── RouteNotFoundError            ROUTE_NOT_FOUND        404
    ├── MethodNotAllowedError         METHOD_NOT_ALLOWED     405
    ├── TooManyRequestsError          TOO_MANY_REQUESTS      429 (retryable)
    ├── TooManyConnectionsError       TOO_MANY_CONNECTIONS   503 (retryable)
    ├── RequestTimeoutError           REQUEST_TIMEOUT        408
    ├── RunTimeoutError               RUN_TIMEOUT            504 (retryable)
    ├── RunFailedError                RUN_FAILED             502
    ├── RunInterruptedError           RUN_INTERRUPTED        503 (retryable)
    ├── InternalError                 INTERNAL_ERROR         500
    ├── StoreUnavailableError         STORE_UNAVAILABLE      503 (retryable)
    │   └── StoreTimeoutError         STORE_TIMEOUT          503 (retryable)
    └── GatewayUnreachableError       GATEWAY_UNREACHABLE    503 (retryable; client side)

The wire form, shared by HTTP, WebSocket, LLM tool results and ``--json``::

    {"ok": false, "error": {"code", "type", "message", "details", "retryable"}}

Where the less obvious codes come from:

- ``INVALID_REQUEST``: any input the wire models refuse before work starts — a
  body that is not JSON, JSON nested deeper than `MAX_JSON_DEPTH` (see
  `sessiongate.wire`), a string that is not valid Unicode (a lone surrogate) or
  holds NUL, ``NaN``/``Infinity``, a number out of its argument's range.
  ``details.problems`` names each argument.
- ``INTERNAL_ERROR``: the one catch-all at each surface's edge (HTTP route,
  WebSocket request, LLM tool call) turned an unexpected exception into this;
  ``details.requestId`` is also in the server log next to the traceback, which
  never goes on the wire. The connection stays usable.
- ``SESSION_DELETED``: the key was deleted (erased) and nothing re-created it;
  ``details.deletedAt`` is the tombstone's time. Only a caller that may see the
  key gets it; any other gets the plain ``SESSION_NOT_FOUND``. It is a
  `SessionNotFoundError`, so code that handles a missing session handles it.
- ``SESSION_RESET``: the session was reset between resolving it and storing the
  message; nothing was stored. The tools resolve again and store it in the fresh
  transcript; a run already in flight is never finished into the fresh one.
- ``RUN_FAILED`` / ``RUN_INTERRUPTED``: not raised to a caller; they are the
  ``error`` of a run's result (``{"status": "error", "error": {...}}``) and of the
  ``run.failed`` event: the runtime raised, or the gateway stopped mid-run. The
  inbound message stays stored either way.
- ``RUN_TIMEOUT``: a send that outlives its wait is *not* an error: the message
  is stored and its run goes on, so ``sessions_send`` answers
  ``{"status": "timeout", "runId", "sessionKey"}`` (retrying would send the
  message twice; read the reply later from the history by ``runId``).
  `RunTimeoutError` is what the Python client raises for that result when asked
  to (``send(..., raise_on_timeout=True)``), carrying ``runId`` and ``sessionKey``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "AgentNotFoundError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "GatewayUnreachableError",
    "InternalError",
    "InvalidRequestError",
    "InvalidSessionKeyError",
    "MethodNotAllowedError",
    "MissingExtraError",
    "PayloadTooLargeError",
    "RequestTimeoutError",
    "RouteNotFoundError",
    "RunFailedError",
    "RunInterruptedError",
    "RunNotFoundError",
    "RunTimeoutError",
    "SessionDeletedError",
    "SessionGateError",
    "SessionMovedError",
    "SessionNotFoundError",
    "SessionResetError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "TooManyConnectionsError",
    "TooManyRequestsError",
    "ToolNotFoundError",
    "UnauthorizedError",
    "error_for_http_status",
    "error_from_wire",
    "plain_message",
]


class SessionGateError(Exception):
    """Base of every sessiongate error; carries a stable code and details."""

    code: ClassVar[str] = "SESSIONGATE_ERROR"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init_subclass__(
        cls, *, code: str, http_status: int | None = None, retryable: bool | None = None
    ) -> None:
        """Each error declares its code (and status and retryable, unless inherited) in its
        class line: ``class ConflictError(SessionGateError, code="CONFLICT", http_status=409)``."""
        super().__init_subclass__()
        cls.code = code
        if http_status is not None:
            cls.http_status = http_status
        if retryable is not None:
            cls.retryable = retryable

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_wire(self) -> dict[str, Any]:
        """The one wire form of this error."""
        return {
            "ok": False,
            "error": {
                "code": self.code,
                "type": type(self).__name__,
                "message": self.message,
                "details": self.details,
                "retryable": self.retryable,
            },
        }


class ConfigError(SessionGateError, code="CONFIG_INVALID", http_status=400):
    """The configuration is invalid; the message names the dotted path."""


class MissingExtraError(ConfigError, code="EXTRA_NOT_INSTALLED"):
    """The config asks for an integration whose optional dependencies are not installed."""


class InvalidSessionKeyError(SessionGateError, code="INVALID_SESSION_KEY", http_status=400):
    """The session key does not follow the key grammar."""


class InvalidRequestError(SessionGateError, code="INVALID_REQUEST", http_status=400):
    """The wire models refused the input before any work started."""


class PayloadTooLargeError(InvalidRequestError, code="PAYLOAD_TOO_LARGE", http_status=413):
    """The request body or a message is larger than the gateway accepts."""


class UnauthorizedError(SessionGateError, code="UNAUTHORIZED", http_status=401):
    """No valid token came with the request."""


class ForbiddenError(SessionGateError, code="FORBIDDEN", http_status=403):
    """The caller is known but may not do this."""


class SessionNotFoundError(SessionGateError, code="SESSION_NOT_FOUND", http_status=404):
    """No session with this key that the caller may see, and none was created."""

    @classmethod
    def refused(
        cls, key: str, *, hidden_by: str | None, policy: str | None, details: dict[str, Any]
    ) -> SessionNotFoundError:
        """The refusal of `key`, naming what decided: visibility (`hidden_by`, the same words
        whether the session exists or not), the create-on-miss `policy`, or a plain lookup."""
        if hidden_by is not None:
            why = f": {hidden_by}"
        elif policy is not None:
            why = f" and {policy} forbids creating it"
        else:
            why = ""
        lint = details.get("lint")
        hint = f"; {lint}" if lint else ""
        return cls(f"no session {key!r}{why}{hint}", details=details)


class AgentNotFoundError(SessionNotFoundError, code="AGENT_NOT_FOUND"):
    """The key names an agent that is not configured: no session of it can exist."""

    @classmethod
    def unknown(
        cls, agent_id: str, hint: str | None, details: dict[str, Any]
    ) -> AgentNotFoundError:
        """No agent `agent_id`; the suggestions (keys, in `details`) are for the surfaces to
        show once, so the message itself never repeats them."""
        where = f" ({hint})" if hint else ""
        return cls(f"no agent {agent_id!r} in agents.list{where}", details=details)


class SessionDeletedError(SessionNotFoundError, code="SESSION_DELETED"):
    """The key was deleted; a tombstone keeps when (``details.deletedAt``)."""

    @property
    def deleted_at(self) -> float | None:
        """The tombstone's time (seconds since the epoch), when this process knows it."""
        value = self.details.get("deletedAt")
        if not isinstance(value, str):
            return None
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None


class ToolNotFoundError(SessionGateError, code="TOOL_NOT_FOUND", http_status=404):
    """No tool of that name in the registry."""


class RunNotFoundError(SessionGateError, code="RUN_NOT_FOUND", http_status=404):
    """No run with this id that the caller may see (an A2A task is a run): a run of a
    session hidden from the caller answers exactly like a run that does not exist."""


class ConflictError(SessionGateError, code="CONFLICT", http_status=409):
    """The request conflicts with the state of the session."""


class SessionMovedError(ConflictError, code="SESSION_MOVED", retryable=True):
    """The session was redirected (aliased) between resolving it and storing a message in it."""


class SessionResetError(ConflictError, code="SESSION_RESET", retryable=True):
    """The session was reset between resolving it and storing into it; nothing was stored."""


class TooManyRequestsError(
    SessionGateError, code="TOO_MANY_REQUESTS", http_status=429, retryable=True
):
    """A connection or caller is over its budget; nothing was done, retry later."""


class RunTimeoutError(SessionGateError, code="RUN_TIMEOUT", http_status=504, retryable=True):
    """A run outlived its wait (raised by the client only when asked to)."""


class TooManyConnectionsError(
    SessionGateError, code="TOO_MANY_CONNECTIONS", http_status=503, retryable=True
):
    """The gateway (or this address) holds as many connections as it may; answered before
    the request is read, then the connection is closed."""


class RequestTimeoutError(SessionGateError, code="REQUEST_TIMEOUT", http_status=408):
    """The request's headers or body did not arrive in time."""


class RouteNotFoundError(SessionGateError, code="ROUTE_NOT_FOUND", http_status=404):
    """No HTTP route at this path."""


class MethodNotAllowedError(SessionGateError, code="METHOD_NOT_ALLOWED", http_status=405):
    """The route exists but not for this HTTP method."""


class RunFailedError(SessionGateError, code="RUN_FAILED", http_status=502):
    """A run's runtime raised; the `error` of its result, not raised to the sender."""


class RunInterruptedError(
    SessionGateError, code="RUN_INTERRUPTED", http_status=503, retryable=True
):
    """The gateway stopped while the run was in flight."""


class InternalError(SessionGateError, code="INTERNAL_ERROR", http_status=500):
    """An unexpected failure caught at a surface's edge; `details.requestId` finds it in the log."""

    @classmethod
    def for_request(cls, request_id: str | None) -> InternalError:
        return cls(
            "the gateway failed on this request; its log has the details under this request id",
            details={"requestId": request_id},
        )


class StoreUnavailableError(
    SessionGateError, code="STORE_UNAVAILABLE", http_status=503, retryable=True
):
    """The store cannot be reached (not started, connection lost); retry later."""


class StoreTimeoutError(StoreUnavailableError, code="STORE_TIMEOUT"):
    """A store call outlived storage.timeoutSeconds (a write may still have been stored)."""


class GatewayUnreachableError(
    SessionGateError, code="GATEWAY_UNREACHABLE", http_status=503, retryable=True
):
    """Raised by the client when no gateway answers at its URL."""


def plain_message(validator_message: str) -> str:
    """A validator's message without pydantic's ``Value error, `` style prefix: the reader
    sees the rule, not which kind of exception a validator raised."""
    for prefix in ("Value error, ", "Assertion failed, "):
        validator_message = validator_message.removeprefix(prefix)
    return validator_message


def _all_error_types() -> dict[str, type[SessionGateError]]:
    found: dict[str, type[SessionGateError]] = {}
    pending: list[type[SessionGateError]] = [SessionGateError]
    while pending:
        cls = pending.pop()
        found[cls.code] = cls
        pending.extend(cls.__subclasses__())
    return found


ERRORS_BY_CODE: dict[str, type[SessionGateError]] = _all_error_types()


def error_for_http_status(status: int, message: str) -> SessionGateError:
    """The error for a status the HTTP framework decided (no route, wrong method, …)."""
    if status == 404:
        return RouteNotFoundError(message)
    if status == 405:
        return MethodNotAllowedError(message)
    if 400 <= status < 500:
        return InvalidRequestError(message, details={"status": status})
    return InternalError(message, details={"status": status})


def error_from_wire(body: dict[str, Any]) -> SessionGateError:
    """Rebuild the typed error from its wire form (used by the client)."""
    error = body.get("error")
    if not isinstance(error, dict):
        return SessionGateError(f"malformed error body: {body!r:.200}")
    cls = ERRORS_BY_CODE.get(str(error.get("code")), SessionGateError)
    details = error.get("details")
    return cls(str(error.get("message", "")), details=details if isinstance(details, dict) else {})
