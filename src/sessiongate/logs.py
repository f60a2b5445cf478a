"""structlog, configured once at start-up: human lines on a terminal, JSON for collectors.

The level comes from ``SESSIONGATE_LOG_LEVEL``, else ``logging.level`` in the
config; the format from ``--log-format``, else ``logging.format`` (``auto`` is
human on a terminal and JSON otherwise). Logs go to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import structlog

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
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


_STDERR = _StderrLogger()


def _stderr_logger(*args: object) -> _StderrLogger:
    return _STDERR


def configure_logging(level: str, log_format: LogFormat = "auto") -> None:
    """Route every structlog logger to stderr at `level`, as human lines or JSON."""
    import structlog  # here, not at the top: client commands never log and skip its import

    number = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,  # a filtered-out level then costs a no-op call
    )
