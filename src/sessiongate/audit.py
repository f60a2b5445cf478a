"""Append-only JSONL audit of refused, warned and created-on-miss addresses.

A failure to write the audit never fails the user's request: it is logged and
counted (``sessiongate_audit_write_failures``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from sessiongate.errors import ConfigError
from sessiongate.logs import UtcSeconds
from sessiongate.metrics import GatewayMetrics
from sessiongate.private_files import make_private_dir, open_no_follow
from sessiongate.wire import dump_json

__all__ = ["AUDITED", "AuditLog", "Decision", "open_audit"]

log = structlog.get_logger("sessiongate.audit")

BATCH_WINDOW_SECONDS = 0.05


class Decision(StrEnum):
    """What resolving an address decided (metrics count each; the audit records all but
    hit), and doctor's repair."""

    HIT = "hit"
    CREATED = "created"
    WARNED = "warned"  # created under createOnMiss "warn"
    REJECTED = "rejected"  # refused by the policy or visibility
    NOT_FOUND = "not-found"  # a parent, own session or read that does not exist
    INVALID = "invalid"  # not a session key, or an agent that is not configured
    REPAIRED = "repaired"  # doctor --fix
    DELETED = "deleted"  # an address or read of a key that was deleted (SESSION_DELETED)
    # the lifecycle operations (who and why; see tools/lifecycle.py)
    ERASED = "erased"
    RESET = "reset"
    ARCHIVED = "archived"
    UNARCHIVED = "unarchived"
    LABELLED = "labelled"
    AUTH_FAILED = "auth-failed"  # wrong tokens from one client address, in bulk (not an address)


AUDITED = (Decision.REJECTED, Decision.INVALID, Decision.WARNED, Decision.CREATED,
           Decision.NOT_FOUND, Decision.REPAIRED, Decision.DELETED, Decision.ERASED,
           Decision.RESET, Decision.ARCHIVED, Decision.UNARCHIVED, Decision.LABELLED,
           Decision.AUTH_FAILED)  # fmt: skip


def open_audit(path: Path) -> BinaryIO:
    """Open the audit file for reading, never through a symlink (as it is written):
    ConfigError naming it when it is one."""
    try:
        return open_no_follow(path)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise ConfigError(
            f"the audit file {path} is a symlink: not read (it is never written through one)",
            details={"path": str(path)},
        ) from None


class AuditLog:
    """One JSON object per line, rotated by size (``sessions.jsonl.1`` … ``.N``).

    `record` queues the event and returns at once; a background writer renders the
    queued events and appends their lines in batches, so a refusal costs the caller
    neither the file I/O nor the line's rendering (its answer leaves first). `flush`
    waits until everything queued is written (the gateway flushes on close).
    """

    def __init__(
        self, path: Path, metrics: GatewayMetrics, max_bytes: int = 10_485_760, backups: int = 5
    ) -> None:
        self.path = path
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.backups = backups
        self._queued: list[tuple[int, dict[str, Any]]] = []  # (time_ns, event), not rendered
        self._pending: list[str] = []
        self._writing: list[str] = []
        self._stamp = _AuditTimestamp()
        self._writer: asyncio.Task[None] | None = None
        self._listeners: set[Callable[[dict[str, Any]], None]] = set()

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `listener` (which must not block) with each event recorded from now on."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    async def record(self, event: dict[str, Any]) -> None:
        """Queue one event for writing; never raises, never waits for the disk."""
        self.queue(event)

    def queue(self, event: dict[str, Any]) -> None:
        """`record` for synchronous callers (inside the event loop). The event's time is
        taken now; its line is rendered by the writer, after the caller has answered (the
        event must not change once queued: callers hand over dicts built for it)."""
        at = time.time_ns()
        self._queued.append((at, event))
        if self._listeners:
            stamped = {"time": self._stamp(at), **event}
            for listener in list(self._listeners):
                listener(stamped)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())

    def _render_queued(self) -> None:
        """The queued events as lines, in order (orjson; ~8% of a refusal's CPU with json)."""
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        for at, event in queued:
            try:
                self._pending.append(dump_json({"time": self._stamp(at), **event}))
            except Exception as exc:  # counted like a failed write; never raised, writer kept
                self.metrics.audit_failures.inc()
                log.error("audit event not written", path=str(self.path), error=str(exc))

    async def _drain(self) -> None:
        await asyncio.sleep(BATCH_WINDOW_SECONDS)  # let a burst of events share one write
        while True:
            self._render_queued()
            if not self._pending:
                return
            self._writing, self._pending = self._pending, []
            lines = self._writing
            try:
                await asyncio.to_thread(self._append, "".join(f"{line}\n" for line in lines))
            except OSError as exc:
                self.metrics.audit_failures.inc(len(lines))
                log.error("audit write failed", path=str(self.path), error=str(exc))
            finally:
                self._writing = []

    async def flush(self) -> None:
        """Wait until every queued event is on disk (or counted as failed)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    def _append(self, text: str) -> None:
        make_private_dir(self.path.parent)
        if self.backups and self.path.exists() and self.path.stat().st_size >= self.max_bytes:
            self._rotate()
        # 0600, and never through a symlink (ELOOP): the audit goes where it is configured
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        with os.fdopen(os.open(self.path, flags, 0o600), "a", encoding="utf-8") as file:
            file.write(text)

    def _rotate(self) -> None:
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    async def recent(self, tail_bytes: int = 1_048_576) -> list[dict[str, Any]]:
        """The events in the last `tail_bytes` of the current file and those still queued
        for it, newest first."""
        self._render_queued()
        queued = [*self._writing, *self._pending]
        written = await asyncio.to_thread(self._tail, tail_bytes)
        on_disk = set(written[-len(queued) :]) if queued else set()
        lines = written + [line for line in queued if line not in on_disk]
        events = []
        for line in reversed(lines):
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events

    def _tail(self, tail_bytes: int) -> list[str]:
        try:
            with open_audit(self.path) as file:
                size = file.seek(0, 2)
                file.seek(max(0, size - tail_bytes))
                chunk = file.read()
        except FileNotFoundError:
            return []
        lines = chunk.decode("utf-8", "replace").splitlines()
        return lines[1:] if size > tail_bytes else lines  # the first line was cut by the seek

    def read(self) -> list[dict[str, Any]]:
        """Every event in the current file (oldest first)."""
        try:
            with open_audit(self.path) as file:
                lines = file.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]


class _AuditTimestamp:
    """An event's ``time`` from `time.time_ns()`: ISO 8601 in UTC with milliseconds, as
    `sessiongate.store.base.iso` writes stored times (``2026-12-05T07:09:39.972+00:00``),
    the date and time formatted once a second (`UtcSeconds`, as the log's timestamp)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = UtcSeconds()

    def __call__(self, at_ns: int) -> str:
        second, millis = divmod(at_ns // 1_000_000, 1000)
        return f"{self.seconds(second)}.{millis:03d}+00:00"
