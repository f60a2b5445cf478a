"""structlog, configured once at start-up: human lines on a terminal, JSON for collectors.

The level comes from ``SESSIONGATE_LOG_LEVEL``, else ``logging.level`` in the
config; the format from ``--log-format``, else ``logging.format`` (``auto`` is
human on a terminal and JSON otherwise). Logs go to stderr, and so do the
standard library's records (uvicorn's "Invalid HTTP request", the WebSocket
protocol's errors, asyncio's), rendered the same way: with JSON every line is
one JSON object, a traceback included.

The chain is kept short because it runs once per HTTP request (the access line): a
timestamp formatted once per second and completed with the microseconds, JSON rendered by
orjson, one write per line. structlog's context variables are not merged in (nothing binds
them; the request id is passed explicitly).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["LogFormat", "configure_logging", "log_level"]

LogFormat = Literal["auto", "human", "json"]


def log_level(configured: str = "warning") -> str:
    """SESSIONGATE_LOG_LEVEL if set, else the configured level."""
    return os.environ.get("SESSIONGATE_LOG_LEVEL", configured).lower()


class _StderrLogger:
    """Writes each rendered line to the current sys.stderr (looked up per line, not bound
    once: a host that swaps it, like a test runner calling the CLI in-process, must not
    leave loggers writing to a closed stream)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


_STDERR = _StderrLogger()


def _stderr_logger(*args: object) -> _StderrLogger:
    return _STDERR


class _UtcTimestamp:
    """``timestamp``: ISO 8601 in UTC with microseconds, as structlog's
    ``TimeStamper(fmt="iso", utc=True)`` writes it, the date and time formatted once a second."""

    __slots__ = ("prefix", "second")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.second = second
        event_dict["timestamp"] = f"{self.prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


def _json_renderer() -> Any:
    """Renders one JSON object; a value JSON has no form for is written as its repr (as
    structlog's JSONRenderer does)."""
    from orjson import OPT_NON_STR_KEYS, dumps

    def render(logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        return dumps(event_dict, default=repr, option=OPT_NON_STR_KEYS).decode()

    return render


def configure_logging(level: str, log_format: LogFormat = "auto") -> None:
    """Route every structlog logger to stderr at `level`, as human lines or JSON."""
    import structlog  # here, not at the top: client commands never log and skip its import

    number = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        _json_renderer() if as_json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    _route_stdlib(renderer)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _UtcTimestamp(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,  # a filtered-out level then costs a no-op call
    )


class _StdlibHandler(logging.Handler):
    """Standard-library records, rendered by structlog's renderer, to the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _STDERR.msg(self.format(record))
        except Exception:
            self.handleError(record)


def _route_stdlib(renderer: Any) -> None:
    """Send the standard library's log records (the root logger's) through `renderer`."""
    import structlog

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            _UtcTimestamp(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(handler)
    handler = _StdlibHandler()
    handler.setFormatter(formatter)
    root.addHandler(handler)
