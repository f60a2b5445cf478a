"""sessiongate: a gateway for multi-agent systems that can fail closed on unknown session keys.

The names below load on first use (PEP 562), so ``import sessiongate.errors`` or
``sessiongate.client`` does not pay for the config models or the resolver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        SessionDeletedError,
        SessionGateError,
        SessionNotFoundError,
        StoreUnavailableError,
        TooManyRequestsError,
        UnauthorizedError,
    )
    from sessiongate.keys import SessionKey, SessionKind, canonical_session_key, parse_session_key
    from sessiongate.policy import CreateOnMissPolicy
    from sessiongate.resolver import Caller, Intent, Resolution, Resolver

    __version__: str

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
]

_HOMES = {
    "config": ("SessionGateConfig", "load_config"),
    "errors": (
        "AgentNotFoundError",
        "ConfigError",
        "ConflictError",
        "ForbiddenError",
        "InvalidRequestError",
        "InvalidSessionKeyError",
        "PayloadTooLargeError",
        "RunTimeoutError",
        "SessionDeletedError",
        "SessionGateError",
        "SessionNotFoundError",
        "StoreUnavailableError",
        "TooManyRequestsError",
        "UnauthorizedError",
    ),
    "keys": ("SessionKey", "SessionKind", "canonical_session_key", "parse_session_key"),
    "policy": ("CreateOnMissPolicy",),
    "resolver": ("Caller", "Intent", "Resolution", "Resolver"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sessiongate")  # one source of truth: pyproject.toml
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _MODULE_OF:
        value = getattr(importlib.import_module(f"sessiongate.{_MODULE_OF[name]}"), name)
    else:
        raise AttributeError(f"module 'sessiongate' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
