"""What PostgreSQL failures mean to a caller: one typed error, one line, one hint.

Every exception asyncpg or the network raises becomes either
`InvalidRequestError` (the value cannot be stored: the same refusal the other
backends give) or `StoreUnavailableError` naming the server's reason and what to
do about it — never a traceback, never a 500.
"""

from __future__ import annotations

import urllib.parse

import asyncpg
import asyncpg.exceptions._base as asyncpg_base

from sessiongate.errors import (
    ConflictError,
    InvalidRequestError,
    SessionGateError,
    StoreUnavailableError,
)
from sessiongate.store.base import store_timeout

__all__ = ["CONNECTION_LOST", "describe_dsn", "translate"]

# errors after which a connection cannot be trusted: it is closed, not reused
CONNECTION_LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)

DATA_ERRORS = (
    asyncpg_base.DataError,  # a Python value asyncpg cannot encode (e.g. out of int64 range)
    asyncpg.DataError,  # SQLSTATE class 22: the server refused the value
    asyncpg.ProgramLimitExceededError,  # e.g. an index entry over PostgreSQL's size limit
    UnicodeError,
    OverflowError,
)

HINTS: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
    (asyncpg.InvalidCatalogNameError,
     "create the database (createdb <name>) or fix the database name in storage.url"),
    (asyncpg.InvalidPasswordError, "check the password in storage.url"),
    (asyncpg.InvalidAuthorizationSpecificationError,
     "check the user in storage.url: that role must exist and may log in"),
    ((asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError),
     "the server is starting up or shutting down; retry in a moment"),
    (asyncpg.TooManyConnectionsError,
     "the server has no free connection: raise max_connections or run fewer gateways"),
    (asyncpg.InsufficientResourcesError, "the database server is out of disk space or memory"),
    (asyncpg.InsufficientPrivilegeError,
     "grant the storage.url user the rights to create and use tables in its schema"),
    (TimeoutError, "the server did not answer in time: check the network and its load"),
    (OSError, "check that PostgreSQL runs and listens at the host and port of storage.url"),
]  # fmt: skip
DEFAULT_HINT = "check that PostgreSQL runs and storage.url is right; a gateway retries per request"


def describe_dsn(dsn: str) -> str:
    """host:port/database of a DSN, without its user or password."""
    parts = urllib.parse.urlsplit(dsn)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"{parts.hostname or 'localhost'}:{port}{parts.path or '/'}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _hint(exc: BaseException) -> str:
    return next((hint for kinds, hint in HINTS if isinstance(exc, kinds)), DEFAULT_HINT)


def translate(exc: BaseException, where: str, timeout: float) -> SessionGateError:
    """The typed error a PostgreSQL failure means to the caller."""
    if isinstance(exc, SessionGateError):
        return exc
    if isinstance(exc, DATA_ERRORS):
        return InvalidRequestError(
            f"a value cannot be stored: {_reason(exc)}", details={"store": "postgresql"}
        )
    if isinstance(exc, asyncpg.UniqueViolationError):  # e.g. a run id that is taken
        return ConflictError(f"the store refused a duplicate: {_reason(exc)}", details={})
    if isinstance(exc, TimeoutError):
        return store_timeout("postgresql", timeout)
    reason = _reason(exc)
    return StoreUnavailableError(
        f"PostgreSQL store at {where} is unavailable: {reason}",
        details={"store": "postgresql", "reason": reason, "hint": _hint(exc)},
    )
