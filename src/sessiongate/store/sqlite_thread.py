"""The one thread that runs every SQLite call of a store, with group commit.

Calls queue up while the thread is busy; it takes everything queued at once,
runs reads as they come and runs each stretch of consecutive writes in one
transaction — each write inside its own savepoint, so one failing write does
not undo the others. Under load many writes share one commit; alone, a write
is its own transaction. Results go back to the event loop in one wake-up per
batch.

The thread never dies: when SQLite rolls a whole transaction back by itself
(disk full, I/O error), every write of that transaction gets the error — none
of them was stored — and the thread goes on with the next batch. A call whose
caller stopped waiting (its deadline passed) is skipped if it has not started, and
rolled back if it finished after its caller gave up (short of the commit itself).
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

import structlog

__all__ = ["StoreThread"]

log = structlog.get_logger("sessiongate.store")

T = TypeVar("T")
MAX_BATCH = 256
STOP_WAIT_SECONDS = 30.0


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    write: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    result: Any = None
    error: BaseException | None = field(default=None)

    @property
    def abandoned(self) -> bool:
        """Its caller stopped waiting (a deadline passed): do not start it."""
        return self.future.cancelled()


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


def _fail(jobs: list[_Job], error: BaseException) -> None:
    for job in jobs:
        job.error, job.result = error, None


class StoreThread:
    """Runs store calls in order on one thread; `connection()` gives the open connection."""

    def __init__(self, name: str, connection: Callable[[], sqlite3.Connection]) -> None:
        self._connection = connection
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def read(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` on the store thread; cancelling the future abandons the call."""
        future: asyncio.Future[T] = self._submit(fn, args, write=False)
        return future

    def write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(connection, *args)` inside a transaction on the store thread."""
        future: asyncio.Future[T] = self._submit(fn, args, write=True)
        return future

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
            try:
                self._execute([job for job in batch if not job.abandoned])
            except BaseException as exc:  # the thread must outlive any one batch
                log.exception("SQLite store batch failed")
                _fail(batch, exc)
            self._hand_back(batch)
            if stopping:
                return

    @staticmethod
    def _hand_back(batch: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(_settle, jobs)

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
            _fail(jobs, exc)
            return
        for done, job in enumerate(jobs):
            if not self._run_write(db, job):  # the transaction is gone: nothing was stored
                _fail(jobs[:done] + jobs[done + 1 :], job.error or sqlite3.OperationalError("lost"))
                self._rollback(db)
                return
        try:
            db.execute("COMMIT")
        except BaseException as exc:  # nothing in this transaction was stored
            self._rollback(db)
            _fail(jobs, exc)

    @staticmethod
    def _run_write(db: sqlite3.Connection, job: _Job) -> bool:
        """Run one write in its own savepoint; False when the whole transaction was lost."""
        try:
            db.execute("SAVEPOINT job")
            job.result = job.fn(db, *job.args)
            if job.abandoned:  # its caller was told STORE_TIMEOUT: do not store it behind its back
                raise TimeoutError("the caller stopped waiting")
            db.execute("RELEASE job")
            return True
        except BaseException as exc:
            job.error = exc
        try:
            db.execute("ROLLBACK TO job")
            db.execute("RELEASE job")
        except sqlite3.Error:  # SQLite rolled the transaction back by itself
            return False
        return db.in_transaction

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(STOP_WAIT_SECONDS)
