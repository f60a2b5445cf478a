"""Every error sessiongate raises, with a stable code and one wire form.

The tree::

    SessionGateError                  SESSIONGATE_ERROR      500
    ├── ConfigError                   CONFIG_INVALID         400
    ├── InvalidSessionKeyError        INVALID_SESSION_KEY    400
    ├── InvalidRequestError           INVALID_REQUEST        400
    │   └── PayloadTooLargeError      PAYLOAD_TOO_LARGE      413
    ├── UnauthorizedError             UNAUTHORIZED           401
    ├── ForbiddenError                FORBIDDEN              403
    ├── SessionNotFoundError          SESSION_NOT_FOUND      404
    ├── AgentNotFoundError            AGENT_NOT_FOUND        404
    ├── ConflictError                 CONFLICT               409
    │   └── SessionMovedError         SESSION_MOVED          409 (retryable)
    ├── TooManyRequestsError          TOO_MANY_REQUESTS      429 (retryable)
    ├── RunTimeoutError               RUN_TIMEOUT            504 (retryable)
    ├── InternalError                 INTERNAL_ERROR         500
    ├── StoreUnavailableError         STORE_UNAVAILABLE      503 (retryable)
    └── GatewayUnreachableError       GATEWAY_UNREACHABLE    503 (retryable; client side)

The wire form, shared by HTTP, WebSocket, LLM tool results and ``--json``::

    {"ok": false, "error": {"code", "type", "message", "details", "retryable"}}
"""

from __future__ import annotations

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
    "PayloadTooLargeError",
    "RunTimeoutError",
    "SessionGateError",
    "SessionMovedError",
    "SessionNotFoundError",
    "StoreUnavailableError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "error_from_wire",
]


class SessionGateError(Exception):
    """Base of every sessiongate error; carries a stable code and details."""

    code: ClassVar[str] = "SESSIONGATE_ERROR"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

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


class ConfigError(SessionGateError):
    code = "CONFIG_INVALID"
    http_status = 400


class InvalidSessionKeyError(SessionGateError):
    code = "INVALID_SESSION_KEY"
    http_status = 400


class InvalidRequestError(SessionGateError):
    code = "INVALID_REQUEST"
    http_status = 400


class PayloadTooLargeError(InvalidRequestError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class UnauthorizedError(SessionGateError):
    code = "UNAUTHORIZED"
    http_status = 401


class ForbiddenError(SessionGateError):
    code = "FORBIDDEN"
    http_status = 403


class SessionNotFoundError(SessionGateError):
    code = "SESSION_NOT_FOUND"
    http_status = 404


class AgentNotFoundError(SessionGateError):
    code = "AGENT_NOT_FOUND"
    http_status = 404


class ConflictError(SessionGateError):
    code = "CONFLICT"
    http_status = 409


class SessionMovedError(ConflictError):
    """The session was redirected (aliased) between resolving it and storing a message in it."""

    code = "SESSION_MOVED"
    retryable = True


class TooManyRequestsError(SessionGateError):
    """A connection or caller is over its budget; nothing was done, retry later."""

    code = "TOO_MANY_REQUESTS"
    http_status = 429
    retryable = True


class RunTimeoutError(SessionGateError):
    code = "RUN_TIMEOUT"
    http_status = 504
    retryable = True


class InternalError(SessionGateError):
    """An unexpected failure caught at a surface's edge; `details.requestId` finds it in the log."""

    code = "INTERNAL_ERROR"
    http_status = 500

    @classmethod
    def for_request(cls, request_id: str | None) -> InternalError:
        return cls(
            "the gateway failed on this request; its log has the details under this request id",
            details={"requestId": request_id},
        )


class StoreUnavailableError(SessionGateError):
    code = "STORE_UNAVAILABLE"
    http_status = 503
    retryable = True


class GatewayUnreachableError(SessionGateError):
    """Raised by the client when no gateway answers at its URL."""

    code = "GATEWAY_UNREACHABLE"
    http_status = 503
    retryable = True


def _all_error_types() -> dict[str, type[SessionGateError]]:
    found: dict[str, type[SessionGateError]] = {}
    pending: list[type[SessionGateError]] = [SessionGateError]
    while pending:
        cls = pending.pop()
        found[cls.code] = cls
        pending.extend(cls.__subclasses__())
    return found


ERRORS_BY_CODE: dict[str, type[SessionGateError]] = _all_error_types()


def error_from_wire(body: dict[str, Any]) -> SessionGateError:
    """Rebuild the typed error from its wire form (used by the client)."""
    error = body.get("error")
    if not isinstance(error, dict):
        return SessionGateError(f"malformed error body: {body!r:.200}")
    cls = ERRORS_BY_CODE.get(str(error.get("code")), SessionGateError)
    details = error.get("details")
    return cls(str(error.get("message", "")), details=details if isinstance(details, dict) else {})
