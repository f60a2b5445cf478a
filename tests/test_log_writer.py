"""The log's stderr writer: info lines on an event loop share writes, nothing is reordered or
lost on a clean stop, and the JSON line is the one structlog's processors wrote."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator

import structlog

from sessiongate import logs
from sessiongate.logs import configure_logging, log_level


class Recording(io.StringIO):
    """A stderr that remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    """stderr swapped for a `Recording` (in the test's body: pytest swaps stderr itself when
    the test starts), the log at info in JSON."""
    logs._STDERR.flush()
    stream, kept = Recording(), sys.stderr
    sys.stderr = stream
    configure_logging("info", "json")
    try:
        yield stream
    finally:
        logs._STDERR.flush()
        sys.stderr = kept
        configure_logging(log_level())


def events(stream: Recording) -> list[str]:
    return [json.loads(line)["event"] for line in stream.getvalue().splitlines()]


def test_info_lines_on_a_loop_share_one_write_in_order() -> None:
    log = structlog.get_logger("test")

    async def main(stderr: Recording) -> None:
        for i in range(5):
            log.info("request", n=i)
        assert stderr.writes == []  # waiting for the ones after them
        await asyncio.sleep(logs.FLUSH_SECONDS * 5)  # the flush, due first, has run

    with recording() as stderr:
        asyncio.run(main(stderr))
        assert events(stderr) == ["request"] * 5
        assert len(stderr.writes) == 1


def test_a_warning_writes_what_waits_first() -> None:
    log = structlog.get_logger("test")

    async def main() -> None:
        log.info("one")
        logging.getLogger("test.stdlib").warning("two")  # as uvicorn's records go
        log.info("three")
        log.error("four")

    with recording() as stderr:
        asyncio.run(main())
        assert events(stderr) == ["one", "two", "three", "four"]


def test_lines_waiting_when_the_loop_ends_come_before_the_next_line() -> None:
    log = structlog.get_logger("test")

    async def main() -> None:
        log.info("in the loop")

    with recording() as stderr:
        asyncio.run(main())  # its flush timer never fires
        log.info("after the loop")  # no loop: written at once, after what waits
        assert events(stderr) == ["in the loop", "after the loop"]


def test_a_full_batch_is_written_at_once() -> None:
    log = structlog.get_logger("test")

    async def main(stderr: Recording) -> None:
        for i in range(logs.MAX_PENDING_LINES):
            log.info("request", n=i)
        assert len(events(stderr)) == logs.MAX_PENDING_LINES

    with recording() as stderr:
        asyncio.run(main(stderr))


def test_writes_keep_lines_whole_within_pipe_buf() -> None:
    stream = Recording()
    lines = ["x" * 1000, "é" * 300, "y" * 5000, "z"]
    logs._write_lines(stream, lines)
    assert "".join(stream.writes) == "".join(f"{line}\n" for line in lines)
    assert all(write.endswith("\n") for write in stream.writes)
    assert all(len(w.encode()) <= logs.PIPE_BUF for w in stream.writes if "y" not in w)
    assert [w for w in stream.writes if "y" in w] == ["y" * 5000 + "\n"]  # alone


def test_the_json_line_is_structlogs_chain_in_one_processor() -> None:
    from structlog.processors import JSONRenderer, TimeStamper, add_log_level, format_exc_info

    def chain(name: str, event_dict: dict[str, object]) -> str:
        for processor in (add_log_level, TimeStamper(fmt="iso", utc=True), format_exc_info):
            event_dict = processor(None, name, event_dict)
        return str(JSONRenderer()(None, name, event_dict))

    try:
        raise ValueError("boom")
    except ValueError:
        error = sys.exc_info()
    cases = [
        ("info", {"method": "GET", "path": '/a"b', "status": 200, "event": "request"}),
        ("warn", {"n": {1: 2}, "event": "w"}),
        ("error", {"exc_info": error, "event": "failed"}),
    ]
    for name, event_dict in cases:
        ours = json.loads(logs._json_line()(None, name, dict(event_dict)))
        theirs = json.loads(chain(name, dict(event_dict)))
        assert list(ours) == list(theirs)
        ours.pop("timestamp"), theirs.pop("timestamp")
        assert ours == theirs
