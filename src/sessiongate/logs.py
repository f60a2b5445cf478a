"""structlog, configured once at start-up: human lines on a terminal, JSON for collectors.

The level comes from ``SESSIONGATE_LOG_LEVEL``, else ``logging.level`` in the
config; the format from ``--log-format``, else ``logging.format`` (``auto`` is
human on a terminal and JSON otherwise). Logs go to stderr, and so do the
standard library's records (uvicorn's "Invalid HTTP request", the WebSocket
protocol's errors, asyncio's), rendered the same way: with JSON every line is
one JSON object, a traceback included.

The chain is kept short because it runs once per HTTP request (the access line): for JSON
one processor adds the level and a timestamp formatted once per second (completed with the
microseconds) and renders with orjson; the info lines of the next few milliseconds share one
write (`_StderrLogger`). structlog's context variables are not merged in (nothing binds them;
the request id is passed explicitly).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["LogFormat", "UtcSeconds", "configure_logging", "log_level"]

LogFormat = Literal["auto", "human", "json"]


def log_level(configured: str = "warning") -> str:
    """SESSIONGATE_LOG_LEVEL if set, else the configured level."""
    return os.environ.get("SESSIONGATE_LOG_LEVEL", configured).lower()


FLUSH_SECONDS = 0.01  # how long an info line may wait to share a write with later ones
MAX_PENDING_LINES = 256  # more waiting than this: written at once
PIPE_BUF = 4096  # POSIX: a write to a pipe up to this size is never interleaved with another's


class _StderrLogger:
    """Writes each rendered line to the current sys.stderr (looked up per line, not bound
    once: a host that swaps it, like a test runner calling the CLI in-process, must not
    leave loggers writing to a closed stream).

    A line at info or below logged on an event loop's thread (the access line: one per
    request) waits up to `FLUSH_SECONDS` for the lines after it, and they are written
    together: one write system call per ~20 lines under load instead of one per line.
    Profile: each write released the GIL in the middle of the event loop's work, the store
    thread took it with fewer writes queued (smaller group commits, more thread switches), and
    the event loop waited to get it back (benchmarks/README.md, issue 21 changes 10 and 24;
    a write at the end of each event-loop step does not avoid that). Any other line (a
    warning, an error, a line from another thread or with no loop running) writes what waits
    first and then itself at once: lines, uvicorn's records included, keep the order they were
    logged in. What waits is written at exit; a process killed outright (kill -9) loses at
    most its last `FLUSH_SECONDS` of info lines, and a message printed to stderr by other
    means (not through the log) in those last milliseconds comes before them. Each write
    holds whole lines and at most `PIPE_BUF` bytes when it can, so on a pipe shared with
    other processes (a container's stderr) no line is split by theirs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._stream: TextIO | None = None  # the stream the waiting lines are for
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # where a flush is due

    def collect(self, message: str) -> None:
        """An info (or debug) line: batched on an event loop's thread, else written now."""
        loop = asyncio._get_running_loop()
        if loop is None:
            self.write(message)
            return
        stream = sys.stderr
        with self._lock:
            if self._pending and stream is not self._stream:  # written for the stream they were for
                _write_lines_quietly(self._stream, self._take())
            self._pending.append(message)
            self._stream = stream
            full = len(self._pending) >= MAX_PENDING_LINES
            schedule = not full and self._timer_loop is not loop
            if schedule:
                self._timer_loop = loop
        if full:
            self.flush()
        elif schedule:
            loop.call_later(FLUSH_SECONDS, self._flush_quietly)

    def write(self, message: str) -> None:
        """Write what waits, then `message`, now."""
        with self._lock:
            lines = self._take() if self._pending else []
            if lines and self._stream is not sys.stderr:
                _write_lines_quietly(self._stream, lines)
                lines = []
            lines.append(message)
            _write_lines(sys.stderr, lines)

    def flush(self) -> None:
        """Write what waits."""
        with self._lock:
            if self._pending:
                _write_lines(self._stream, self._take())

    def _flush_quietly(self) -> None:
        with self._lock:
            self._timer_loop = None
            if self._pending:
                _write_lines_quietly(self._stream, self._take())

    def _take(self) -> list[str]:
        lines, self._pending = self._pending, []
        return lines

    def _forget(self) -> None:
        """In a forked child: the parent writes its own waiting lines."""
        self._lock = threading.Lock()
        self._pending, self._stream, self._timer_loop = [], None, None

    debug = info = collect
    msg = warning = warn = error = critical = exception = fatal = log = write


def _write_lines_quietly(stream: TextIO | None, lines: list[str]) -> None:
    """`_write_lines`, for a stream that may be gone since (nowhere left to say so)."""
    with contextlib.suppress(OSError, ValueError):
        _write_lines(stream, lines)


def _write_lines(stream: TextIO | None, lines: list[str]) -> None:
    """`lines`, each followed by a newline, in as few writes of at most PIPE_BUF bytes as
    keep every line whole (a longer line is one write of its own)."""
    if stream is None:
        return
    chunk: list[str] = []
    size = 0
    for line in lines:
        length = len(line) + 1 if line.isascii() else 4 * len(line) + 1
        if chunk and size + length > PIPE_BUF:
            stream.write("".join(chunk))
            chunk, size = [], 0
        chunk.append(line + "\n")
        size += length
    stream.write("".join(chunk))
    stream.flush()


_STDERR = _StderrLogger()
atexit.register(_STDERR.flush)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_STDERR._forget)


def _stderr_logger(*args: object) -> _StderrLogger:
    return _STDERR


class UtcSeconds:
    """The date and time of a Unix second in UTC, ISO 8601 (``2026-12-05T07:09:39``),
    formatted once per second: what a timestamp with a fraction of a second begins with."""

    __slots__ = ("prefix", "second")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def __call__(self, second: int) -> str:
        if second != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.second = second
        return self.prefix


class _UtcTimestamp:
    """``timestamp``: ISO 8601 in UTC with microseconds, as structlog's
    ``TimeStamper(fmt="iso", utc=True)`` writes it, the date and time formatted once a second."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = UtcSeconds()

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)
        event_dict["timestamp"] = f"{self.seconds(second)}.{micros:06d}Z"
        return event_dict


_LEVELS = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level names them


def _json_line() -> Any:
    """The JSON chain as one processor: ``level``, ``timestamp``, a formatted traceback when
    asked (``exception``), then one JSON object rendered by orjson; a value JSON has no form
    for is written as its repr (as structlog's JSONRenderer does). The same keys in the same
    order as structlog's ``add_log_level``, ``TimeStamper``, ``format_exc_info`` and
    ``JSONRenderer`` in a row, for a third of their time."""
    from orjson import OPT_NON_STR_KEYS, dumps
    from structlog.processors import format_exc_info

    stamp = _UtcTimestamp()

    def render(logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        event_dict["level"] = _LEVELS.get(name, name)
        stamp(logger, name, event_dict)
        if "exc_info" in event_dict:
            event_dict = format_exc_info(logger, name, event_dict)
        return dumps(event_dict, default=repr, option=OPT_NON_STR_KEYS).decode()

    return render


def _json_renderer() -> Any:
    """Renders one JSON object, as `_json_line` does (for the standard library's records)."""
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
    chain = [
        structlog.processors.add_log_level,
        _UtcTimestamp(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=[_json_line()] if as_json else chain,
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,  # a filtered-out level then costs a no-op call
    )


class _StdlibHandler(logging.Handler):
    """Standard-library records, rendered by structlog's renderer, to the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if record.levelno <= logging.INFO:
                _STDERR.collect(line)
            else:
                _STDERR.write(line)
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
