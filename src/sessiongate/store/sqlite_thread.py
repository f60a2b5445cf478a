"""The one thread that runs every SQLite call of a store, with group commit.

Calls queue up while the thread is busy; it takes everything queued at once,
runs reads as they come and runs each stretch of consecutive writes in one
transaction — each write inside its own savepoint, so one failing write does
not undo the others. Under load many writes share one commit; alone, a write
is its own transaction. Results go back to the event loop in one wake-up per
batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["StoreThread"]

T = TypeVar("T")
MAX_BATCH = 256


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    write: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    result: Any = None
    error: BaseException | None = field(default=None)


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.cancelled():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


class StoreThread:
    """Runs store calls in order on one thread; `connection()` gives the open connection."""

    def __init__(self, name: str, connection: Callable[[], sqlite3.Connection]) -> None:
        self._connection = connection
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the store thread."""
        result: T = await self._submit(fn, args, write=False)
        return result

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` inside a transaction on the store thread."""
        result: T = await self._submit(fn, args, write=True)
        return result

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], write: bool) -> Any:
        loop = asyncio.get_running_loop()
        job = _Job(fn, args, write, loop.create_future(), loop)
        self._jobs.put(job)
        return job.future

    def _take_batch(self, first: _Job) -> tuple[list[_Job], bool]:
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return batch, False
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _work(self) -> None:
        while (first := self._jobs.get()) is not None:
            batch, stopping = self._take_batch(first)
            self._execute(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
            for job in batch:
                by_loop.setdefault(job.loop, []).append(job)
            for loop, jobs in by_loop.items():
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                    loop.call_soon_threadsafe(_settle, jobs)
            if stopping:
                return

    def _execute(self, batch: list[_Job]) -> None:
        index = 0
        while index < len(batch):
            if not batch[index].write:
                self._run_read(batch[index])
                index += 1
                continue
            end = index
            while end < len(batch) and batch[end].write:
                end += 1
            self._run_writes(batch[index:end])
            index = end

    @staticmethod
    def _run_read(job: _Job) -> None:
        try:
            job.result = job.fn(*job.args)
        except BaseException as exc:  # handed to the awaiting coroutine
            job.error = exc

    def _run_writes(self, jobs: list[_Job]) -> None:
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            for job in jobs:
                job.error = exc
            return
        for job in jobs:
            db.execute("SAVEPOINT job")
            try:
                job.result = job.fn(db, *job.args)
                db.execute("RELEASE job")
            except BaseException as exc:
                job.error = exc
                db.execute("ROLLBACK TO job")
                db.execute("RELEASE job")
        try:
            db.execute("COMMIT")
        except BaseException as exc:  # nothing in this transaction was stored
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            for job in jobs:
                job.error, job.result = exc, None

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()
