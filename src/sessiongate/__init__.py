"""sessiongate: a gateway for multi-agent systems that can fail closed on unknown session keys."""

from __future__ import annotations

from sessiongate.config import SessionGateConfig, load_config
from sessiongate.errors import (
    AgentNotFoundError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    InvalidSessionKeyError,
    PayloadTooLargeError,
    RunTimeoutError,
    SessionGateError,
    SessionNotFoundError,
    StoreUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sessiongate.keys import SessionKey, SessionKind, canonical_session_key, parse_session_key
from sessiongate.policy import CreateOnMissPolicy
from sessiongate.resolver import Caller, Intent, Resolution, Resolver

__version__ = "0.1.0"

__all__ = [
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
]
