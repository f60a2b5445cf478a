"""The gateway core: configuration, store, resolver, runs and runtimes, wired once.

Every surface (HTTP, WebSocket, CLI, LLM tool calls, MCP, the control page)
talks to a `Gateway` through its typed operations — `send`, `spawn`,
`list_sessions`, `history`, `show`, `resolve`, `subscribe` — each taking a shared
argument model (`sessiongate.tools.args`) and answering a typed outcome
(`sessiongate.outcomes`). `invoke(name, raw)` is the untyped door for callers that
hold a tool name and raw arguments (LLM tool calls, MCP, ``/tools/invoke``): it
validates with the tool's model and calls the same operation. None of the surfaces
touches the store or resolves keys on its own. The rules — the tool allow-list
(`gateway.tools.allow`), visibility, agent-to-agent and create-on-miss — are decided
on this path (the last three by the resolver), whatever the surface. A surface's job
is to parse its wire shape once into the shared models, to build the `Caller`
(`caller_for`), to shape the outcome for its wire, and to keep one catch-all
(`sessiongate.catchall.internal_error`) at its edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from typing import Any

import httpx
import structlog

from sessiongate.audit import AuditLog
from sessiongate.channels import receive_inbound, recipient_key
from sessiongate.config import AgentConfig, SessionGateConfig
from sessiongate.errors import (
    ConflictError,
    RunNotFoundError,
    SessionNotFoundError,
    StoreUnavailableError,
)
from sessiongate.extras import check_extra
from sessiongate.metrics import GatewayMetrics
from sessiongate.openclaw.ids import find_session_id
from sessiongate.outcomes import (
    History,
    SendOutcome,
    SessionListing,
    ShownSession,
    SpawnOutcome,
    Subscription,
)
from sessiongate.paging import CursorSigner, VisibleListing
from sessiongate.resolver import Caller, Intent, Resolution, Resolver
from sessiongate.retention import PruneReport, RetentionAction, plan
from sessiongate.runtime.base import Runtime
from sessiongate.runtime.echo import EchoRuntime
from sessiongate.runtime.runs import Listener, RunManager, RunStream
from sessiongate.runtime.webhook import WebhookRuntime
from sessiongate.store import SessionPage, SessionRecord, SessionStore, open_store
from sessiongate.store.base import (
    Erasure,
    MessageRecord,
    Origin,
    PageSessions,
    ResetOutcome,
    RunRecord,
    RunStatus,
    SessionStatus,
    Tombstone,
    now,
)
from sessiongate.tool_names import ToolName
from sessiongate.tools import ToolContext, get_tool
from sessiongate.tools.args import (
    DeleteArgs,
    HistoryArgs,
    ListArgs,
    PatchArgs,
    PruneArgs,
    ResetArgs,
    SendArgs,
    SessionArgs,
    SpawnArgs,
    StatusArgs,
)
from sessiongate.tools.base import ToolArgs, validate_args
from sessiongate.tools.lifecycle import (
    erase,
    sessions_archive,
    sessions_delete,
    sessions_patch,
    sessions_reset,
    sessions_unarchive,
    set_status,
)
from sessiongate.tools.sessions import (
    sessions_history,
    sessions_list,
    sessions_send,
    sessions_spawn,
)
from sessiongate.tracing import traced_store

__all__ = ["Gateway"]

log = structlog.get_logger("sessiongate.gateway")

JANITOR_INTERVAL_SECONDS = 2.0
RUN_TRANSCRIPT = 1000  # messages searched for a run's own (sessions_history's largest page)
MAX_RUN_ID = 200


class Gateway:
    """One running gateway: what every surface calls."""

    def __init__(self, config: SessionGateConfig, store: SessionStore) -> None:
        self.config = config
        store = traced_store(store)  # itself, unless traces are on
        self.store = store
        self.page_sessions: PageSessions = store  # the control page's sign-ins, for surfaces
        self.started_at = time.time()
        self.metrics = GatewayMetrics()
        audit = config.audit
        self.audit = AuditLog(config.audit_path, self.metrics, audit.max_bytes, audit.backups)
        self.resolver = Resolver(config, store, self.metrics, self.audit)
        self.cursors = CursorSigner(config.gateway.auth.token)
        self.runs = RunManager(store, self.metrics, self.runtime_for, self.invoke)
        self.http = httpx.AsyncClient()
        self._runtimes: dict[str, Runtime] = {}  # built when first needed (`runtime_for`)
        self._background: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, config: SessionGateConfig, *, serving: bool = True) -> Gateway:
        """Open the configured store; a serving gateway also recovers and creates each main.

        A non-serving gateway (the CLI reading the store beside a running server)
        writes nothing on open.
        """
        store = await open_store(config.storage_url, config.storage.timeout_seconds)
        try:
            gateway = cls(config, store)
            if serving:  # a serving gateway refuses to start without what its agents need
                for agent in config.agents.entries:
                    gateway.runtime_for(agent.id)
        except BaseException:
            await store.close()
            raise
        if serving:
            await store.mark_serving()
            await store.interrupt_running()
            await gateway.resolver.ensure_startup_sessions()
            gateway._background.append(asyncio.create_task(gateway._sweep_orphaned_runs()))
            if config.session.retention.rules:
                gateway._background.append(asyncio.create_task(gateway._retention_janitor()))
            if store.shared:
                gateway._background.append(asyncio.create_task(gateway.runs.relay_events()))
        return gateway

    async def _sweep_orphaned_runs(self) -> None:
        """Mark runs of gateway processes that died (kill -9, lost machine) as interrupted."""
        while True:
            await asyncio.sleep(JANITOR_INTERVAL_SECONDS)
            try:
                await self.store.heal()
                swept = await self.store.interrupt_running()
                swept += await self.runs.interrupt_unrecorded()
            except StoreUnavailableError as exc:
                log.warning("orphaned-run sweep skipped", error=exc.message)
                continue
            except Exception:  # the janitor must outlive any one sweep
                log.exception("orphaned-run sweep failed")
                continue
            if swept:
                log.warning("runs of a stopped gateway process marked interrupted", runs=swept)

    async def _retention_janitor(self) -> None:
        """Apply session.retention every intervalMinutes (one process at a time)."""
        interval = self.config.session.retention.interval_minutes * 60
        caller = Caller(None, "retention")
        while True:
            await asyncio.sleep(interval)
            try:
                report = await self.prune(PruneArgs(dry_run=False), caller)
            except StoreUnavailableError as exc:
                log.warning("retention pass skipped", error=exc.message)
                continue
            except Exception:  # the janitor must outlive any one pass
                log.exception("retention pass failed")
                continue
            if report.done:
                log.info("retention applied", sessions=len(report.done))

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Finish or interrupt in-flight runs, then release the store."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.runs.close(grace_seconds)
        await self.audit.flush()
        for runtime in self._runtimes.values():
            await runtime.close()
        await self.http.aclose()
        await self.store.close()

    def _make_runtime(self, agent: AgentConfig) -> Runtime:
        model = self.config.model_of(agent)
        if model == "echo":
            return EchoRuntime()
        if model == "webhook":
            assert agent.webhook is not None
            return WebhookRuntime(agent.webhook, self.http)
        return self._make_llm_runtime(agent, model)

    def _make_llm_runtime(self, agent: AgentConfig, model: str) -> Runtime:
        check_extra("openai", "llm", f"agent {agent.id!r} (model {model!r})")
        from sessiongate.runtime.llm import LlmRuntime, ModelEndpoint

        provider_name, model_name = model.split("/", 1)
        provider = self.config.models.providers[provider_name]
        endpoint = ModelEndpoint(provider.base_url, provider.api_key, provider.timeout_seconds)
        defaults = self.config.agents.defaults
        prompt = agent.system_prompt or defaults.system_prompt
        offered = self.config.gateway.tools.allow
        return LlmRuntime(endpoint, model_name, prompt, defaults.max_tool_rounds, offered)

    def runtime_for(self, agent_id: str) -> Runtime:
        """The runtime that answers for this agent, built the first time it is needed (so
        reading the store — ``sessions list``, ``doctor`` — needs no runtime's extra)."""
        runtime = self._runtimes.get(agent_id)
        if runtime is None:
            agent = self.config.agent(agent_id)
            if agent is None:
                raise KeyError(agent_id)
            runtime = self._runtimes[agent_id] = self._make_runtime(agent)
        return runtime

    def _context(self, caller: Caller) -> ToolContext:
        return ToolContext(self.resolver, self.store, self.runs, self._visible_page, caller)

    def _allowed(self, tool: str) -> None:
        """ForbiddenError unless `gateway.tools.allow` lets surfaces use `tool`."""
        allowed = self.config.gateway.tools.allow
        if tool not in allowed:
            get_tool(tool, allowed)  # raises the forbidden-tool error

    async def invoke(self, tool: str, args: Any, caller: Caller) -> dict[str, Any]:
        """Run tool `tool` with raw wire `args` for `caller`: validate them with the tool's
        model, call its typed operation, answer its outcome's wire form.

        `tool` is a name from `sessiongate.tools.TOOLS` (``sessions_send``,
        ``sessions_spawn``, ``sessions_list``, ``sessions_history``); `args` is the
        tool's camelCase argument object as it came off the wire; `caller` is who
        speaks (`caller_for` builds it). Raises a `SessionGateError` —
        ``TOOL_NOT_FOUND`` for an unknown tool, ``INVALID_REQUEST`` for bad arguments,
        ``FORBIDDEN`` for a tool outside `gateway.tools.allow`, ``SESSION_NOT_FOUND``
        for a reference the resolver refuses, …
        """
        spec = get_tool(tool, self.config.gateway.tools.allow)
        parsed = validate_args(spec.args_model, args, tool)
        context = ToolContext(self.resolver, self.store, self.runs, self._visible_page, caller)
        return (await spec.run(context, parsed)).to_wire()

    async def run_tool(self, tool: str, args: ToolArgs, caller: Caller) -> dict[str, Any]:
        """`invoke` with arguments a surface has already validated with the tool's model
        (`args` is an instance of ``TOOLS[tool].args_model``): nothing is validated again.
        Raises as `invoke` does (``TOOL_NOT_FOUND``, ``FORBIDDEN``, …)."""
        spec = get_tool(tool, self.config.gateway.tools.allow)
        context = ToolContext(self.resolver, self.store, self.runs, self._visible_page, caller)
        return (await spec.run(context, args)).to_wire()

    async def send(
        self, args: SendArgs, caller: Caller, stream: RunStream | None = None
    ) -> SendOutcome:
        """Send a message to the session `args` addresses (``sessions_send``).

        With `stream`, the run events of the addressed session are collected from before
        the run is queued; `stream.follow` then relays them (the streaming surfaces).
        """
        self._allowed(ToolName.SEND)
        return await sessions_send(self._context(caller), args, stream)

    async def spawn(self, args: SpawnArgs, caller: Caller) -> SpawnOutcome:
        """Start a run in a fresh child session, or a named one (``sessions_spawn``)."""
        self._allowed(ToolName.SPAWN)
        return await sessions_spawn(self._context(caller), args)

    async def list_sessions(self, args: ListArgs, caller: Caller) -> SessionListing:
        """A page of the sessions `caller` may see, newest first (``sessions_list``)."""
        self._allowed(ToolName.LIST)
        return await sessions_list(self._context(caller), args)

    async def history(self, args: HistoryArgs, caller: Caller) -> History:
        """A session's transcript, read (never created) (``sessions_history``)."""
        self._allowed(ToolName.HISTORY)
        return await sessions_history(self._context(caller), args)

    async def resolve(self, args: SessionArgs, caller: Caller) -> Resolution:
        """How a reference resolves for reading (never creates); allowed with
        ``sessions_history``."""
        self._allowed(ToolName.HISTORY)
        return await self.resolver.resolve(
            args.session_key, caller, Intent.READ, follow_alias=args.follow_alias
        )

    async def show(self, args: SessionArgs, caller: Caller) -> ShownSession:
        """A session by reference, read (never created); allowed with ``sessions_history``."""
        resolution = await self.resolve(args, caller)
        return ShownSession(resolution.session, resolution.requested_key)

    async def subscribe(
        self, args: SessionArgs, caller: Caller, listener: Listener
    ) -> Subscription:
        """Stream the run events of a session `caller` may read (as ``sessions_history``),
        from this process and every other one on the same store."""
        key = (await self.resolve(args, caller)).key
        return Subscription(key, self.runs.subscribe(key, listener))

    def _allowed_for(self, caller: Caller, tool: ToolName) -> None:
        """An operator may always use the lifecycle operations; an agent (a caller with a
        session of its own) only when `gateway.tools.allow` names the tool."""
        if not caller.is_operator:
            self._allowed(tool)

    async def delete(self, args: DeleteArgs, caller: Caller) -> Erasure:
        """Erase a session, leaving a tombstone (``sessions_delete``; see tools/lifecycle.py)."""
        self._allowed_for(caller, ToolName.DELETE)
        return await sessions_delete(self._context(caller), args)

    async def reset(self, args: ResetArgs, caller: Caller) -> ResetOutcome:
        """A fresh transcript under the same key (``sessions_reset``)."""
        self._allowed_for(caller, ToolName.RESET)
        return await sessions_reset(self._context(caller), args)

    async def archive(self, args: StatusArgs, caller: Caller) -> ShownSession:
        """Archive a session (``sessions_archive``)."""
        self._allowed_for(caller, ToolName.ARCHIVE)
        return await sessions_archive(self._context(caller), args)

    async def unarchive(self, args: StatusArgs, caller: Caller) -> ShownSession:
        """Make an archived session active (``sessions_unarchive``)."""
        self._allowed_for(caller, ToolName.UNARCHIVE)
        return await sessions_unarchive(self._context(caller), args)

    async def patch(self, args: PatchArgs, caller: Caller) -> ShownSession:
        """Set or clear a session's label (``sessions_patch``)."""
        self._allowed_for(caller, ToolName.PATCH)
        return await sessions_patch(self._context(caller), args)

    async def prune(self, args: PruneArgs, caller: Caller, at: float | None = None) -> PruneReport:
        """Apply `session.retention` at time `at` (default now); a dry run changes nothing.

        Operators only. Runs on one gateway process at a time: while another holds
        the retention lock, the report says ``skipped``.
        """
        self._allowed_for(caller, ToolName.DELETE)
        at = now() if at is None else at
        rules = self.config.session.retention.rules
        actions = plan(await self._all_sessions(), rules, at)
        if args.dry_run:
            return PruneReport(True, at, actions)
        async with self.store.exclusive("retention") as held:
            if not held:
                return PruneReport(False, at, actions, skipped=True)
            done = [a.session_key for a in actions if await self._retain(a, caller)]
        return PruneReport(False, at, actions, tuple(done))

    async def _retain(self, action: RetentionAction, caller: Caller) -> bool:
        """Apply one planned action, unless its session changed since it was planned."""
        session = await self.store.find(action.session_key)
        if session is None or session.updated_at != action.updated_at:
            return False
        context = self._context(caller)
        reason = f"session.retention.rules[{action.rule}]: idle {action.idle_days:.1f} days"
        if action.action == "archive":
            await set_status(context, session, SessionStatus.ARCHIVED, reason)
        else:
            await erase(context, session, reason)
        return True

    async def _all_sessions(self) -> list[SessionRecord]:
        found: list[SessionRecord] = []
        cursor: str | None = None
        while True:
            page = await self.store.list_sessions(limit=1000, cursor=cursor)
            found.extend(page.sessions)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    async def key_for_openclaw_id(self, session_id: str) -> str:
        """The key of the session an OpenClaw ``sessionId`` names (its own, or the one an
        imported session carried); SessionNotFoundError naming the id otherwise."""
        return await find_session_id(self.store, session_id)

    def key_for_recipient(
        self, agent_id: str | None, to: str, channel: str | None, account: str | None
    ) -> str:
        """The key of the direct conversation with phone number `to` under session.dmScope."""
        agent = agent_id or self.config.default_agent.id
        return recipient_key(self.config, agent, to, channel, account)

    async def tombstones(self, limit: int = 1000) -> list[Tombstone]:
        """The deleted keys, newest deletion first (doctor, the page)."""
        return await self.store.list_tombstones(limit=limit)

    async def caller_for(self, session_key: str | None, entry_point: str) -> Caller:
        """The caller an optional own-session key stands for; that session must exist
        (it is never created: SessionNotFoundError otherwise)."""
        if session_key is None:
            return Caller(None, entry_point)
        operator = Caller(None, entry_point)
        own = await self.resolver.resolve(session_key, operator, Intent.OWN)
        return Caller(own.key, entry_point)

    async def _visible_page(
        self,
        caller: Caller,
        *,
        agent_id: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """A page of the sessions `caller` may see, newest first.

        The cursor is sealed to the caller's view (`paging.py`); it is given only
        when a further row the caller may see exists, so paging reveals nothing of
        rows it may not see.
        """
        view = json.dumps([caller.session_key, agent_id, kind])
        may_see = None if caller.is_operator else functools.partial(self.resolver.may_see, caller)
        listing = VisibleListing(self.store, may_see, kind)
        scope = self.resolver.only_visible_agent(caller)
        if scope is not None and agent_id not in (None, scope):
            return SessionPage([], None)  # nothing of another agent is visible
        position = self.cursors.open(cursor, view)
        page = await listing.page(agent_id or scope, limit, position)
        return SessionPage(page.sessions, self.cursors.seal(page.next_cursor, view))

    async def session_counts(self) -> dict[str, int]:
        """How many sessions each origin created (startup, address, spawn, …)."""
        return await self.store.count_by_origin()

    async def aliases_of(self, args: SessionArgs, caller: Caller) -> list[str]:
        """The keys that redirect to the session `args` names (read: never creates)."""
        key = (await self.resolve(args, caller)).key
        return await self.store.aliases_of(key)

    def canonical_key(self, reference: str) -> str:
        """The canonical text of a key (pure: no lookup, no rule applied)."""
        return self.resolver.parse(reference).text

    async def create_session(
        self, reference: str, origin: Origin, entry_point: str, label: str | None = None
    ) -> tuple[SessionRecord, bool]:
        """Create (or find) a session on purpose, e.g. `sessiongate sessions create`
        (a deleted key too: this is the explicit creation that brings it back)."""
        return await self.resolver.ensure_origin_session(
            reference, origin, entry_point, label, decided_at=now()
        )

    async def create_context(self, agent_id: str, caller: Caller) -> SessionRecord:
        """Start a new conversation with `agent_id` on purpose (an A2A message without a
        ``contextId``): a fresh ``agent:<id>:a2a:<uuid>`` session, origin ``a2a``."""
        return await self.resolver.create_context(agent_id, caller)

    async def show_run(self, run_id: str, caller: Caller) -> tuple[RunRecord, list[MessageRecord]]:
        """A run and its messages (among its session's newest `RUN_TRANSCRIPT`), for a caller
        that may read its session (as ``sessions_history``).

        RunNotFoundError otherwise, the same for a run of a session hidden from the caller
        as for an id that was never a run.
        """
        record = await self.store.find_run(run_id) if 0 < len(run_id) <= MAX_RUN_ID else None
        key = None
        if record is not None:
            with contextlib.suppress(SessionNotFoundError):
                key = (await self.resolve(_read(record.session_key), caller)).key
        if record is None or key is None:
            raise RunNotFoundError(
                f"no run {run_id[:MAX_RUN_ID]!r}", details={"runId": run_id[:MAX_RUN_ID]}
            )
        history = await self.store.history(key, limit=RUN_TRANSCRIPT)
        return record, [m for m in history if m.run_id == record.run_id]

    async def cancel_run(self, run_id: str, caller: Caller) -> RunRecord:
        """Cancel a run that has not started, for a caller that may send to its session
        (``sessions_send``); ConflictError once it executes or has ended (or waits in
        another gateway process); RunNotFoundError as `show_run`."""
        self._allowed(ToolName.SEND)
        record, _ = await self.show_run(run_id, caller)
        if record.status == RunStatus.RUNNING and await self.runs.cancel_queued(
            record.session_key, record.run_id
        ):
            return (await self.show_run(run_id, caller))[0]
        raise ConflictError(
            f"run {record.run_id} cannot be cancelled: it "
            + ("has ended" if record.status != RunStatus.RUNNING else "has started"),
            details={"runId": record.run_id, "runStatus": record.status},
        )

    async def runs_of(
        self, reference: str, caller: Caller, limit: int
    ) -> tuple[str, list[RunRecord]]:
        """The newest runs (at most `limit`, newest first) among a session's newest
        `RUN_TRANSCRIPT` messages, and its canonical key; read as ``sessions_history``."""
        key = (await self.resolve(_read(reference), caller)).key
        history = await self.store.history(key, limit=RUN_TRANSCRIPT)
        run_ids = list(dict.fromkeys(m.run_id for m in reversed(history) if m.run_id))
        runs = [await self.store.find_run(run_id) for run_id in run_ids[:limit]]
        return key, [run for run in runs if run is not None]

    async def receive_inbound(self, channel: str, raw: Any) -> dict[str, Any]:
        """Store and run a channel's inbound message (its session comes from its origin)."""
        return await receive_inbound(self.resolver, self.runs, channel, raw)

    async def count_sessions(self) -> int:
        """How many sessions the store holds (not cheap on a large store)."""
        return await self.store.count_sessions()

    async def check_ready(self) -> None:
        """Raise StoreUnavailableError unless the store answers and can write (cheap)."""
        await self.store.ping()


def _read(reference: str) -> SessionArgs:
    """A reference read as it is (its aliases followed), already validated by its caller."""
    return SessionArgs.model_construct(session_key=reference, follow_alias=True)
