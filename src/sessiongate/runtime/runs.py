"""Runs: one lane per session (runs in a session are serialised), concurrent across sessions.

The inbound message is stored (with its sequence number) before the send is
acknowledged; a run that fails records the failure and keeps the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import structlog

import sessiongate.tracing as tracing
from sessiongate.errors import (
    RunFailedError,
    RunInterruptedError,
    SessionDeletedError,
    SessionResetError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from sessiongate.metrics import GatewayMetrics
from sessiongate.outcomes import SendOutcome, SendStatus
from sessiongate.resolver import Caller
from sessiongate.run_ids import new_run_id
from sessiongate.runtime.base import InvokeTool, Runtime, Turn, answer_now
from sessiongate.store.base import (
    MessageRecord,
    RunRecord,
    RunStatus,
    SessionRecord,
    SessionStore,
)

__all__ = ["CANCELLED", "RunEvent", "RunManager", "RunStream"]

log = structlog.get_logger("sessiongate.runs")

HISTORY_WINDOW = 40
REPLY_LOOKBACK = 200  # messages searched for the reply of a repeated, finished run
RELAY_BATCH = 200
END_RETRY_DELAYS = (0.2, 1.0)  # then the janitor marks the run interrupted (every ~2 s)
UNRECORDED = "the run ended but its end could not be stored"
CANCELLED = "cancelled before it started"  # a run's error when `cancel_queued` took it out

RunEvent = dict[str, Any]
Listener = Callable[[RunEvent], None]


@dataclass(slots=True)
class _Run:
    record: RunRecord
    session: SessionRecord
    message: str
    done: asyncio.Future[SendOutcome]
    trace: Any = None  # the request's trace context (traces on): the run's span joins it
    span: Any = None
    history: list[MessageRecord] | None = None  # the transcript, when read at intake


class _Lane:
    """A session's runs in this process: queued in sequence order, run one at a time."""

    __slots__ = ("intake", "queue", "users", "worker")

    def __init__(self) -> None:
        self.queue: deque[_Run] = deque()
        self.intake = asyncio.Lock()  # held while a message is stored: seq order == run order
        self.worker: asyncio.Task[None] | None = None
        self.users = 0  # sends holding or awaiting `intake`

    def idle(self) -> bool:
        """No run of this lane is queued or executing."""
        return not self.queue and (self.worker is None or self.worker.done())


class RunManager:
    """Accepts messages for sessions, runs them lane by lane, and reports their events."""

    def __init__(
        self,
        store: SessionStore,
        metrics: GatewayMetrics,
        runtime_for: Callable[[str], Runtime],
        invoke_tool: InvokeTool,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.runtime_for = runtime_for
        self.invoke_tool = invoke_tool
        self._lanes: dict[str, _Lane] = {}
        self._listeners: dict[str, set[Listener]] = {}
        self._active: set[asyncio.Task[None]] = set()
        self._relay: asyncio.Queue[RunEvent] | None = None
        self._by_id: dict[str, asyncio.Future[SendOutcome]] = {}
        self._unrecorded: set[str] = set()  # runs whose end the store did not take

    def subscribe(self, session_key: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` with each event of the runs of one session (from any process);
        returns the unsubscribe function."""
        self._listeners.setdefault(session_key, set()).add(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(session_key, set())
            listeners.discard(listener)
            if not listeners:
                self._listeners.pop(session_key, None)

        return unsubscribe

    def _publish(self, event: str, run: _Run, **payload: Any) -> None:
        if run.session.key not in self._listeners and self._relay is None:
            return  # nobody listens: do not build the event
        body = {"event": event, "runId": run.record.run_id, "sessionKey": run.session.key}
        body.update(payload)
        self.deliver(body)
        if self._relay is not None:
            self._relay.put_nowait(body)

    def deliver(self, event: RunEvent) -> None:
        """Hand an event (of a run here, or relayed from another process) to its listeners."""
        for listener in list(self._listeners.get(event["sessionKey"], ())):
            listener(event)

    async def relay_events(self) -> None:
        """Share this process's run events with the other processes on the same store."""
        self._relay = asyncio.Queue()
        try:
            await self.store.listen_events(self.deliver)
        except StoreUnavailableError as exc:  # the janitor's sweep listens again later
            log.warning("not listening to other processes yet", error=exc.message)
        while True:
            batch = [await self._relay.get()]
            while not self._relay.empty() and len(batch) < RELAY_BATCH:
                batch.append(self._relay.get_nowait())
            try:
                await self.store.publish_events(batch)
            except StoreUnavailableError as exc:
                log.warning("run event not shared with other processes", error=exc.message)

    async def start(self, session: SessionRecord, message: str, caller: Caller) -> RunRecord:
        """Store the inbound message, queue its run, and return at once."""
        return (await self._accept(session, message, caller)).record

    async def send(
        self,
        session: SessionRecord,
        message: str,
        caller: Caller,
        wait_seconds: float,
        origin: dict[str, Any] | None = None,
    ) -> SendOutcome:
        """Store the message, run it, and wait up to `wait_seconds` (0: do not wait).

        `origin` (e.g. the channel and peer of an inbound message) is kept with the message.
        """
        run = await self._accept(session, message, caller, origin)
        return await _wait(run.done, wait_seconds, run.record.run_id, session.key)

    async def send_once(
        self,
        session: SessionRecord,
        message: str,
        caller: Caller,
        wait_seconds: float,
        run_id: str,
    ) -> SendOutcome:
        """`send` under a caller-chosen run id: a repeated id answers with that run (in
        flight here, or finished in the store) and never starts a second one."""
        claimed = self._by_id.get(run_id)
        if claimed is not None:
            return replace(await _wait(claimed, wait_seconds, run_id, session.key), duplicate=True)
        done: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self._by_id[run_id] = done
        # Shielded: a caller that goes away mid-intake (a WebSocket closing cancels its
        # requests) must not leave the claim behind unanswered. The intake goes on, so the
        # one run of this id is stored and run, and a repeat of the send is answered with it.
        intake = asyncio.ensure_future(self._claimed_intake(session, message, caller, run_id, done))
        try:
            taken = await asyncio.shield(intake)
        except asyncio.CancelledError:
            intake.add_done_callback(_retrieve)
            raise
        if isinstance(taken, SendOutcome):
            return taken
        return await _wait(taken.done, wait_seconds, run_id, session.key)

    async def _claimed_intake(
        self,
        session: SessionRecord,
        message: str,
        caller: Caller,
        run_id: str,
        done: asyncio.Future[SendOutcome],
    ) -> _Run | SendOutcome:
        """The intake of a send under a claimed run id: its run, or, when the store refused
        it, the answer a repeat gets (`_repeated`)."""
        try:
            return await self._accept(session, message, caller, None, run_id, done)
        except Exception as exc:
            del self._by_id[run_id]
            return replace(await self._repeated(run_id, done, exc), duplicate=True)

    async def _repeated(
        self, run_id: str, done: asyncio.Future[SendOutcome], error: Exception
    ) -> SendOutcome:
        """After the store refused to accept a run: its outcome if a run with this id exists
        (sent before this process started, or already finished here), else `error`.

        Concurrent repeats of the send waiting on `done` get the same answer.
        """
        try:
            record = await self.store.find_run(run_id)
            if record is None:
                raise error
            outcome = await self._outcome_of(record)
        except Exception as exc:
            done.set_exception(exc)
            done.add_done_callback(lambda future: future.exception())
            raise
        done.set_result(outcome)
        return outcome

    async def _outcome_of(self, record: RunRecord) -> SendOutcome:
        """What a send of this (stored) run answered, or would answer now."""
        run_id, key = record.run_id, record.session_key
        if record.status == RunStatus.RUNNING:
            return SendOutcome("accepted", run_id, key)
        if record.status != RunStatus.COMPLETED:
            failure = RunFailedError if record.status == RunStatus.FAILED else RunInterruptedError
            error = failure(record.error or f"the run was {record.status}").to_wire()["error"]
            return SendOutcome("error", run_id, key, error=error)
        history = await self.store.history(record.session_key, limit=REPLY_LOOKBACK, before=None)
        replies = [m.content for m in history if m.run_id == record.run_id and m.role != "user"]
        return SendOutcome("ok", run_id, key, reply=replies[-1] if replies else None)

    async def _accept(
        self,
        session: SessionRecord,
        message: str,
        caller: Caller,
        origin: dict[str, Any] | None = None,
        run_id: str | None = None,
        done: asyncio.Future[SendOutcome] | None = None,
    ) -> _Run:
        run_id = run_id or new_run_id()
        key = session.key
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.users += 1
        try:
            async with lane.intake:  # sequence order == run order
                meta = {"caller": caller.session_key, "entryPoint": caller.entry_point}
                if origin:
                    meta.update(origin)
                if lane.idle():
                    answered = await self._answer_at_once(session, message, run_id, meta, done)
                    if answered is not None:
                        return answered
                return await self._queue(lane, session, message, run_id, meta, done)
        finally:
            lane.users -= 1
            if not lane.users and lane.idle() and self._lanes.get(key) is lane:
                del self._lanes[key]  # nothing queued, stored or waiting: no lane left behind

    async def _queue(
        self,
        lane: _Lane,
        session: SessionRecord,
        message: str,
        run_id: str,
        meta: dict[str, Any],
        done: asyncio.Future[SendOutcome] | None,
    ) -> _Run:
        """Store the inbound message and its run, and queue the run on its lane.

        A run that starts at once (its lane idle) and reads the transcript gets it with the
        intake, in the same store call where the store can (`accept_with_history`)."""
        history: list[MessageRecord] | None = None
        if lane.idle() and self._uses_history(session):
            _, record, history = await self.store.accept_with_history(
                session.key, message, run_id=run_id, history=HISTORY_WINDOW, meta=meta,
                incarnation=session.incarnation,
            )  # fmt: skip
        else:
            _, record = await self.store.accept_message(
                session.key, message, run_id=run_id, meta=meta, incarnation=session.incarnation
            )
        future = done or asyncio.get_running_loop().create_future()
        run = _Run(record, session, message, future, tracing.capture(), history=history)
        lane.queue.append(run)
        if lane.worker is None or lane.worker.done():
            lane.worker = asyncio.create_task(self._drain(session.key, lane))
            self._active.add(lane.worker)
            lane.worker.add_done_callback(self._active.discard)
        return run

    def _uses_history(self, session: SessionRecord) -> bool:
        try:
            return self.runtime_for(session.agent_id).uses_history
        except Exception:  # no runtime: the run records its failure
            return False

    async def _answer_at_once(
        self,
        session: SessionRecord,
        message: str,
        run_id: str,
        meta: dict[str, Any],
        done: asyncio.Future[SendOutcome] | None,
    ) -> _Run | None:
        """A whole run in one store write, when the session's runtime answers without I/O
        (`AnswersAtOnce`) and the store writes the message, the completed run and the reply
        in one transaction; its events and outcome as if it had run. None: run it normally
        (also with traces on: the run's span is the normal path's)."""
        if not self.store.answers_in_one_write or tracing.enabled():
            return None
        try:
            runtime = self.runtime_for(session.agent_id)
        except Exception:  # no runtime: the normal path records the run's failure
            return None
        reply = answer_now(runtime, message)
        if reply is None:
            return None
        started = time.perf_counter()
        answered = await self.store.accept_answered(
            session.key, message, reply, run_id=run_id, meta=meta, incarnation=session.incarnation
        )
        if answered is None:
            return None
        future = done or asyncio.get_running_loop().create_future()
        run = _Run(answered[1], session, message, future)
        self._publish("run.started", run, agentId=session.agent_id)
        self._publish("run.delta", run, delta=reply)
        self._publish("run.completed", run, reply=reply)
        self.metrics.observe_run(runtime.name, "ok", time.perf_counter() - started)
        self._settle(run, "ok", reply)
        return run

    async def _drain(self, key: str, lane: _Lane) -> None:
        while lane.queue:
            await self._execute(lane.queue.popleft())
        # a send holding or awaiting the intake lock will start a new worker on this lane
        if not lane.users and self._lanes.get(key) is lane:
            del self._lanes[key]

    async def _execute(self, run: _Run) -> None:
        if run.trace is None:
            await self._run(run)
            return
        attributes = {
            "sessiongate.run_id": run.record.run_id,
            "sessiongate.agent": run.session.agent_id,
            "sessiongate.session_key": run.session.key,
        }
        links = tracing.run_links(run.trace)
        with tracing.span("sessiongate.run", attributes, context=run.trace, links=links) as span:
            run.span = span
            await self._run(run)

    async def _run(self, run: _Run) -> None:
        store = self.store
        runtime = self.runtime_for(run.session.agent_id)
        started = time.perf_counter()
        self._publish("run.started", run, agentId=run.session.agent_id)
        run_id = run.record.run_id
        kept: str | None = None  # the reply, once stored
        try:
            async with store.session_lock(run.session.key):
                reply = await self._reply(runtime, run)
        except asyncio.CancelledError:
            with contextlib.suppress(StoreUnavailableError):  # close() interrupts it anyway
                await store.finish_run(run_id, RunStatus.INTERRUPTED, "gateway stopped")
            stopped = RunInterruptedError("the gateway stopped during this run")
            self._settle(run, "error", error=stopped.to_wire()["error"])
            raise
        except Exception as exc:  # a runtime's failure is recorded, never fatal to the gateway
            log.warning("run failed", run_id=run_id, error=repr(exc))
            failure = repr(exc)[:2000]
            await self._record_end(
                run_id, lambda: store.finish_run(run_id, RunStatus.FAILED, failure)
            )
            error = RunFailedError(f"{type(exc).__name__}: {exc}"[:2000]).to_wire()["error"]
            self._publish("run.failed", run, error=error)
            status: SendStatus = "error"
        else:
            status, error = await self._complete(run, reply)
            kept = reply if status == "ok" else None
        self.metrics.observe_run(runtime.name, status, time.perf_counter() - started)
        tracing.set_attributes(run.span, status=str(status))
        self._settle(run, status, kept, error)

    async def _complete(self, run: _Run, reply: str) -> tuple[SendStatus, dict[str, Any] | None]:
        """Store the run's reply; how the run ended (``ok``, or ``error`` and why)."""
        store, key, run_id = self.store, run.session.key, run.record.run_id
        incarnation = run.session.incarnation

        async def complete() -> None:
            await store.complete_run(key, run_id, reply, incarnation=incarnation)

        try:
            stored = await self._record_end(run_id, complete)
        except (SessionDeletedError, SessionResetError) as exc:
            # deleted or reset during the run: its reply is not kept anywhere
            gone = RunInterruptedError(f"{exc.message}; the reply was dropped")
            error = {**gone.to_wire()["error"], "details": {"cause": exc.code}}
            self._publish("run.failed", run, error=error)
            return "error", error
        if stored:
            self._publish("run.completed", run, reply=reply)
            return "ok", None
        error = StoreUnavailableError("the run's reply could not be stored").to_wire()["error"]
        self._publish("run.failed", run, error=error)
        return "error", error

    async def _record_end(self, run_id: str, write: Callable[[], Awaitable[Any]]) -> bool:
        """Store a run's end, retrying briefly; else the janitor marks it interrupted."""
        for delay in (*END_RETRY_DELAYS, None):
            try:
                await write()
                return True
            except StoreUnavailableError as exc:
                log.warning("run end not stored", run_id=run_id, error=exc.message)
                timed_out = isinstance(exc, StoreTimeoutError)
            if delay is None:
                break
            await asyncio.sleep(delay)
            if timed_out:  # the write may have been stored after all: never store it twice
                ended = await self._ended(run_id)
                if ended is not False:
                    return self._left_for_janitor(run_id) if ended is None else True
        return self._left_for_janitor(run_id)

    def _left_for_janitor(self, run_id: str) -> bool:
        self._unrecorded.add(run_id)
        return False

    async def _ended(self, run_id: str) -> bool | None:
        """Whether the run's end is stored (None: the store cannot tell now)."""
        try:
            run = await self.store.find_run(run_id)
        except StoreUnavailableError:
            return None
        return run is not None and run.status != RunStatus.RUNNING

    async def interrupt_unrecorded(self) -> int:
        """Mark runs whose end could not be stored as interrupted; the janitor calls this."""
        marked = 0
        for run_id in list(self._unrecorded):
            ended = await self._ended(run_id)
            if ended is None:
                continue  # the store is still away: next sweep
            if not ended:
                await self.store.finish_run(run_id, RunStatus.INTERRUPTED, UNRECORDED)
                marked += 1
            self._unrecorded.discard(run_id)
        return marked

    async def _reply(self, runtime: Runtime, run: _Run) -> str:
        prior: list[MessageRecord] = []
        if runtime.uses_history:  # echo and webhook answer from the message alone
            history = run.history
            if history is None:  # queued behind another run, or not read by the store
                history = await self.store.history(
                    run.session.key, limit=HISTORY_WINDOW, before=None
                )
            prior = [m for m in history if m.run_id != run.record.run_id]
        turn = Turn(self.invoke_tool, run.session, run.record.run_id, run.message, prior)

        async def emit(delta: str) -> None:
            self._publish("run.delta", run, delta=delta)

        return await runtime.run(turn, emit)

    def cancel_session(self, key: str, keep: str | None = None) -> int:
        """Drop the queued runs of `key` in this process that belong to an incarnation other
        than `keep` (after a delete or reset); returns how many.

        A run already executing is left to finish: the store refuses its reply
        (SESSION_DELETED / SESSION_RESET), as it does for other processes' runs.
        """
        lane = self._lanes.get(key)
        if lane is None:
            return 0
        kept: list[_Run] = []
        dropped = 0
        while lane.queue:
            run = lane.queue.popleft()
            if keep is not None and run.session.incarnation == keep:
                kept.append(run)
                continue
            stopped = RunInterruptedError("the session was deleted or reset before this run")
            self._settle(run, "error", error=stopped.to_wire()["error"])
            dropped += 1
        lane.queue.extend(kept)
        return dropped

    async def cancel_queued(self, session_key: str, run_id: str) -> bool:
        """Take a run that waits in its session's lane in this process out of it, before it
        starts: recorded as interrupted (`CANCELLED`), its waiters and listeners told.
        False if it is not waiting here (executing, ended, or queued by another process).
        """
        lane = self._lanes.get(session_key)
        if lane is None:
            return False
        found = next((run for run in lane.queue if run.record.run_id == run_id), None)
        if found is None:
            return False
        # the others in the same order: sequence order stays run order
        lane.queue = deque(run for run in lane.queue if run is not found)
        error = RunInterruptedError(f"the run was {CANCELLED}").to_wire()["error"]
        self._publish("run.failed", found, error=error)
        self._settle(found, "error", error=error)
        await self._record_end(
            run_id, lambda: self.store.finish_run(run_id, RunStatus.INTERRUPTED, CANCELLED)
        )
        return True

    def _settle(
        self,
        run: _Run,
        status: SendStatus,
        reply: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        run_id = run.record.run_id
        if self._by_id.get(run_id) is run.done:  # finished: the store answers now
            del self._by_id[run_id]
        if not run.done.done():
            run.done.set_result(SendOutcome(status, run_id, run.session.key, reply, error))

    async def close(self, grace_seconds: float) -> None:
        """Let in-flight runs finish for up to `grace_seconds`, then interrupt the rest."""
        pending = set(self._active)
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace_seconds)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        await self.store.interrupt_running(own=True)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of a task nobody awaits any more as seen (its error, if any, was
    handed to the waiters of its claim)."""
    if not task.cancelled():
        task.exception()


async def _wait(
    done: asyncio.Future[SendOutcome], wait_seconds: float, run_id: str, session_key: str
) -> SendOutcome:
    """A run's outcome once it is known, or `accepted` / `timeout` after `wait_seconds`."""
    if wait_seconds == 0:
        return SendOutcome("accepted", run_id, session_key)
    if done.done():  # answered at once
        return done.result()
    # a waiter woken by the run's end or a timer: cheaper than a timeout scope around a
    # shield (both a few µs per send), and `done` is never cancelled by this wait
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    timer = loop.call_later(wait_seconds, wake)
    done.add_done_callback(wake)
    try:
        await woken
    finally:
        timer.cancel()
        done.remove_done_callback(wake)
    if done.done():
        return done.result()
    return SendOutcome("timeout", run_id, session_key)


# Hands on one event: None when done at once, else an awaitable that does it.
Emit = Callable[[RunEvent], Awaitable[None] | None]


class RunStream:
    """The run events of the session a send addresses, collected from before the send
    queues its run (`Gateway.send(..., stream=)` subscribes as part of the send), so
    nothing of that run can be missed. A context manager: leaving it unsubscribes.

    `follow` is the one run-stream loop of every streaming surface.
    """

    def __init__(self) -> None:
        # A deque and a waiter, not an asyncio.Queue: its bookkeeping per event (unfinished
        # tasks, an Event cleared, getters looked at) was most of a relay's own cost.
        self._events: deque[RunEvent] = deque()
        self._arrived: asyncio.Future[None] | None = None  # set while `follow` waits
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, runs: RunManager, session_key: str) -> None:
        """Listen to `session_key`'s runs (instead of any session listened to before)."""
        self.close()
        self._unsubscribe = runs.subscribe(session_key, self._collect)

    def _collect(self, event: RunEvent) -> None:
        self._events.append(event)
        arrived = self._arrived
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def __enter__(self) -> RunStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def follow(self, accepted: SendOutcome, emit: Emit, wait_seconds: float) -> SendOutcome:
        """Hand each event of `accepted`'s run to `emit` until the run ends, for at most
        `wait_seconds`; the run's outcome (``timeout`` if it was still running).

        Events already collected (a run answered at once has ended before the send returns)
        are handed on before a deadline is armed: the deadline waits for the run, and a
        slow reader is the connection's budgets' concern."""
        events = self._events
        while events:
            ended = await self._relay(accepted, events.popleft(), emit)
            if ended is not None:
                return ended
        try:
            async with asyncio.timeout(wait_seconds):
                return await self._until_end(accepted, emit)
        except TimeoutError:
            return _ended(accepted, "timeout")

    async def _until_end(self, accepted: SendOutcome, emit: Emit) -> SendOutcome:
        while True:
            ended = await self._relay(accepted, await self._next(), emit)
            if ended is not None:
                return ended

    async def _next(self) -> RunEvent:
        while not self._events:
            self._arrived = asyncio.get_running_loop().create_future()
            try:
                await self._arrived
            finally:
                self._arrived = None
        return self._events.popleft()

    @staticmethod
    async def _relay(accepted: SendOutcome, event: RunEvent, emit: Emit) -> SendOutcome | None:
        """Hand on one event of `accepted`'s run (others are skipped); the outcome at its end."""
        if event["runId"] != accepted.run_id:
            return None
        pending = emit(event)
        if pending is not None:
            await pending
        name = event["event"]
        if name == "run.completed":
            return _ended(accepted, "ok", reply=event["reply"])
        if name == "run.failed":
            return _ended(accepted, "error", error=event["error"])
        return None


def _ended(
    accepted: SendOutcome,
    status: SendStatus,
    reply: str | None = None,
    error: dict[str, Any] | None = None,
) -> SendOutcome:
    """`accepted` with the run's end (`dataclasses.replace` cost a turn ~1.5 us)."""
    return SendOutcome(
        status, accepted.run_id, accepted.session_key, reply, error,
        accepted.duplicate, accepted.warnings,
    )  # fmt: skip
