"""The public API is the curated `__all__`; the error tree has one wire form."""

from __future__ import annotations

import sessiongate
from sessiongate import errors
from sessiongate.errors import ERRORS_BY_CODE, SessionNotFoundError, error_from_wire

EXPECTED_PUBLIC = {
    "AgentNotFoundError",
    "Caller",
    "ConfigError",
    "ConflictError",
    "CreateOnMissPolicy",
    "ForbiddenError",
    "Intent",
    "InvalidRequestError",
    "InvalidSessionKeyError",
    "PayloadTooLargeError",
    "Resolution",
    "Resolver",
    "RunTimeoutError",
    "SessionDeletedError",
    "SessionGateConfig",
    "SessionGateError",
    "SessionKey",
    "SessionKind",
    "SessionNotFoundError",
    "StoreUnavailableError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "__version__",
    "canonical_session_key",
    "load_config",
    "parse_session_key",
}


def test_public_api_is_exactly_the_curated_list() -> None:
    assert set(sessiongate.__all__) == EXPECTED_PUBLIC
    for name in sessiongate.__all__:
        assert hasattr(sessiongate, name), name


def test_every_error_round_trips_through_the_wire_form() -> None:
    for code, cls in ERRORS_BY_CODE.items():
        error = cls("message", details={"k": 1})
        wire = error.to_wire()
        assert wire["ok"] is False
        assert wire["error"]["code"] == code
        back = error_from_wire(wire)
        assert type(back) is cls and back.details == {"k": 1}


def test_codes_and_statuses_are_stable() -> None:
    expected = {
        "SESSION_NOT_FOUND": 404,
        "AGENT_NOT_FOUND": 404,
        "INVALID_SESSION_KEY": 400,
        "INVALID_REQUEST": 400,
        "UNAUTHORIZED": 401,
        "FORBIDDEN": 403,
        "CONFLICT": 409,
        "STORE_UNAVAILABLE": 503,
        "CONFIG_INVALID": 400,
        "PAYLOAD_TOO_LARGE": 413,
        "TOO_MANY_REQUESTS": 429,
    }
    assert {c: ERRORS_BY_CODE[c].http_status for c in expected} == expected
    assert ERRORS_BY_CODE["STORE_UNAVAILABLE"].retryable is True
    assert ERRORS_BY_CODE["TOO_MANY_REQUESTS"].retryable is True
    assert "SessionNotFoundError" in (errors.__doc__ or "")
    assert SessionNotFoundError("x").to_wire()["error"]["retryable"] is False
