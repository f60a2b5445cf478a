"""Group commit for PostgreSQL: concurrent writes of one kind share one statement.

A write that finds no statement of its kind in flight is written at once, alone, in
its caller's task. Writes that arrive while one is in flight wait, and go together in
the next statement (at most `MAX_GROUP`, one per session key: a statement's rows must
not race each other for a session's sequence numbers). Under load many sends share a
round trip; alone, a send pays nothing for it.

Each waiting caller keeps its own deadline: a write whose caller gave up before its
statement started is left out of it (a write that timed out after that may still have
been stored, as the deadline's error says). A fault of the statement is every row's
answer. Whether a row was written, or must be written alone, is for the writer to say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["MAX_GROUP", "Group"]

Item = TypeVar("Item")
Result = TypeVar("Result")
MAX_GROUP = 64


@dataclass(slots=True)
class _Waiting(Generic[Item, Result]):
    key: str
    item: Item
    future: asyncio.Future[Result] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Group(Generic[Item, Result]):
    """Writes items by `write` (items in, one result per item, in order), grouped."""

    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[list[Result]]],
        timeout: float,
        fault: Callable[[BaseException], Exception],
    ) -> None:
        self._write = write
        self._timeout = timeout
        self._fault = fault
        self._waiting: list[_Waiting[Item, Result]] = []
        self._busy = False  # a statement of this group is in flight (or about to be)
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, key: str, item: Item) -> Result:
        """Write `item` (for session `key`), alone now or with others next."""
        if self._busy:
            return await self._wait(_Waiting(key, item))
        self._busy = True
        try:
            [result] = await self._write([item])
        finally:
            self._hand_on()
        return result

    async def _wait(self, waiting: _Waiting[Item, Result]) -> Result:
        self._waiting.append(waiting)
        try:
            async with asyncio.timeout(self._timeout):
                return await waiting.future  # a deadline cancels it: left out if not begun
        except TimeoutError as exc:
            raise self._fault(exc) from exc

    def _hand_on(self) -> None:
        """After a statement: the next one for the writes that waited, in a task of its own
        (the caller that led goes back to its request), or nothing is in flight."""
        if not any(not w.future.done() for w in self._waiting):
            self._waiting.clear()
            self._busy = False
            return
        self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while batch := self._take():
                try:
                    results = await self._write([w.item for w in batch])
                except Exception as exc:
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(exc)
                    continue
                for w, result in zip(batch, results, strict=True):
                    if not w.future.done():
                        w.future.set_result(result)
        finally:
            self._busy = False
            self._flusher = None
            for w in self._waiting:  # only if this task was cancelled (the store closes)
                w.future.cancel()
            self._waiting.clear()

    def _take(self) -> list[_Waiting[Item, Result]]:
        """The next statement's writes: in order, one per key, up to MAX_GROUP; the
        writes whose callers gave up are dropped."""
        batch: list[_Waiting[Item, Result]] = []
        keys: set[str] = set()
        rest: list[_Waiting[Item, Result]] = []
        for w in self._waiting:
            if w.future.done():
                continue
            if w.key in keys or len(batch) >= MAX_GROUP:
                rest.append(w)
                continue
            keys.add(w.key)
            batch.append(w)
        self._waiting = rest
        return batch

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
