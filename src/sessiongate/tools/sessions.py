"""The sessions_* tools, defined once for HTTP, WebSocket, the CLI and LLM agents."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, TypeVar

from sessiongate.errors import InvalidRequestError, SessionNotFoundError
from sessiongate.keys import SessionKind
from sessiongate.outcomes import History, SendOutcome, SessionListing, SpawnOutcome
from sessiongate.resolver import Intent
from sessiongate.runtime.runs import RunStream
from sessiongate.store.base import MessageRecord, SessionRecord
from sessiongate.tool_names import ToolName
from sessiongate.tools.args import (
    HistoryArgs,
    Kind,
    ListArgs,
    OpenClawKind,
    SendArgs,
    SpawnArgs,
)
from sessiongate.tools.base import ToolContext, ToolSpec

__all__ = [
    "SESSION_TOOLS",
    "HistoryArgs",
    "Kind",
    "ListArgs",
    "OpenClawKind",
    "SendArgs",
    "SpawnArgs",
    "sessions_history",
    "sessions_list",
    "sessions_send",
    "sessions_spawn",
]

T = TypeVar("T")

IDEMPOTENCY_NAMESPACE = uuid.UUID("5e5510a6-a7e0-4c1b-9d3e-0c1a3b9e7d21")

# OpenClaw's sessions_list kinds, as the session kinds they cover here.
OPENCLAW_KINDS: dict[str, frozenset[SessionKind]] = {
    "main": frozenset({SessionKind.MAIN}),
    "group": frozenset({SessionKind.GROUP, SessionKind.CHANNEL}),
    "cron": frozenset({SessionKind.CRON}),
    "hook": frozenset({SessionKind.HOOK}),
    "node": frozenset(),
    "other": frozenset({SessionKind.DIRECT, SessionKind.SUBAGENT, SessionKind.A2A}),
}


async def sessions_list(ctx: ToolContext, args: ListArgs) -> SessionListing:
    page = await ctx.list_sessions(
        ctx.caller, agent_id=args.agent_id, kind=args.kind, limit=args.limit, cursor=args.cursor
    )
    sessions = tuple(s for s in page.sessions if _listed(s, args))
    if not args.message_limit:
        return SessionListing(sessions, page.next_cursor)
    messages = {
        s.key: in_time_order(await ctx.store.history(s.key, limit=args.message_limit))
        for s in sessions
    }
    return SessionListing(sessions, page.next_cursor, messages)


def _listed(session: SessionRecord, args: ListArgs) -> bool:
    """Whether OpenClaw's filters (kinds, activeMinutes) keep this session."""
    if args.kinds is not None and not any(session.kind in OPENCLAW_KINDS[k] for k in args.kinds):
        return False
    if args.active_minutes is None:
        return True
    return session.updated_at >= time.time() - args.active_minutes * 60


def in_time_order(messages: list[MessageRecord]) -> list[MessageRecord]:
    """Messages in the order they were written (then by seq): those a repair recovered
    carry their original times and take their place among the others."""
    return sorted(messages, key=lambda m: (m.created_at, m.seq))


async def sessions_history(ctx: ToolContext, args: HistoryArgs) -> History:
    resolution = await ctx.resolver.resolve(
        args.session_key, ctx.caller, Intent.READ, follow_alias=args.follow_alias
    )
    messages = await ctx.store.history(resolution.key, limit=args.limit, before=args.before)
    return History(resolution.key, tuple(in_time_order(messages)))


async def _key_for_label(ctx: ToolContext, label: str, agent_id: str | None) -> str:
    """The key of the newest active session with this label (sessions_send by label)."""
    if not label.strip():
        raise InvalidRequestError("label must not be empty", details={"argument": "label"})
    record = await ctx.store.find_by_label(label, agent_id)
    if record is None or not await ctx.resolver.may_see(ctx.caller, record):
        raise SessionNotFoundError(
            f"no session labelled {label!r}",
            details={"requestedLabel": label, "agentId": agent_id, "suggestions": []},
        )
    return record.key


async def sessions_send(
    ctx: ToolContext, args: SendArgs, stream: RunStream | None = None
) -> SendOutcome:
    """Send a message; with `stream`, its session's run events are collected from before
    the run is queued (the stream follows the session the address resolved to)."""
    reference = args.session_key
    if reference is None:
        assert args.label is not None
        reference = await _key_for_label(ctx, args.label, args.agent_id)
    elif args.agent_id is not None:
        _refuse_disagreement("sessions_send", "agentId", "narrows a label")

    def deliver(session: SessionRecord) -> Awaitable[SendOutcome]:
        if stream is not None:
            stream.attach(ctx.runs, session.key)
        if args.idempotency_key is None:
            return ctx.runs.send(session, args.message, ctx.caller, args.timeout_seconds)
        run_id = idempotent_run_id(ctx.caller.session_key, session.key, args.idempotency_key)
        return ctx.runs.send_once(session, args.message, ctx.caller, args.timeout_seconds, run_id)

    resolution, outcome = await ctx.resolver.deliver(
        reference, ctx.caller, args.create_on_miss, deliver
    )
    if resolution.lints:
        return replace(outcome, warnings=tuple(resolution.warnings))
    return outcome


def idempotent_run_id(caller_key: str | None, session_key: str, idempotency_key: str) -> str:
    """The run id a send with this idempotency key gets: the same for every repeat of it by
    the same caller to the same session, unrelated for anyone else."""
    scope = "\x00".join((caller_key or "operator", session_key, idempotency_key))
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, scope))


def _refuse_disagreement(tool: str, argument: str, why: str) -> None:
    raise InvalidRequestError(
        f"{tool}: {argument} {why}; with sessionKey leave it out",
        details={"tool": tool, "problems": [f"{argument}: not with sessionKey ({why})"]},
    )


def _check_named_spawn(ctx: ToolContext, args: SpawnArgs, session_key: str) -> None:
    """A spawn into a named session: agentId must be that key's agent; label and parent
    describe a fresh child only, so they are refused rather than ignored."""
    if args.label is not None:
        _refuse_disagreement("sessions_spawn", "label", "names a fresh child")
    if args.parent_session_key is not None:
        _refuse_disagreement("sessions_spawn", "parentSessionKey", "is a fresh child's parent")
    key = ctx.resolver.parse(session_key)
    key_agent = key.agent_id or ctx.resolver.default_agent_id
    if key_agent != args.agent_id:
        raise InvalidRequestError(
            f"sessions_spawn: agentId {args.agent_id!r} disagrees with sessionKey {key.text!r} "
            f"(agent {key_agent!r})",
            details={
                "tool": "sessions_spawn",
                "problems": [f"agentId: {args.agent_id!r} is not the agent of sessionKey"],
                "canonicalKey": key.text,
            },
        )


async def sessions_spawn(ctx: ToolContext, args: SpawnArgs) -> SpawnOutcome:
    if args.session_key is not None:
        _check_named_spawn(ctx, args, args.session_key)
        named, run = await ctx.resolver.deliver(
            args.session_key, ctx.caller, None, lambda s: ctx.runs.start(s, args.task, ctx.caller)
        )
        return SpawnOutcome(named.key, run.run_id)
    parent_ref = args.parent_session_key or ctx.caller.session_key
    parent = None
    if parent_ref is not None:
        parent = (await ctx.resolver.resolve(parent_ref, ctx.caller, Intent.PARENT)).session
    child = await ctx.resolver.create_child(args.agent_id, parent, ctx.caller, args.label)
    run = await ctx.runs.start(child, args.task, ctx.caller)
    return SpawnOutcome(child.key, run.run_id)


SESSION_TOOLS: tuple[ToolSpec[Any], ...] = (
    ToolSpec(
        ToolName.SEND,
        "Send a message to a session by key (or label) and wait up to timeoutSeconds for "
        "the reply. A key that does not exist may be refused with SESSION_NOT_FOUND; read "
        "its suggestions and retry with one of them.",
        SendArgs,
        sessions_send,
        addresses_session=True,
    ),
    ToolSpec(
        ToolName.SPAWN,
        "Start a sub-agent in a fresh session with a task; returns at once with the child "
        "session key and run id.",
        SpawnArgs,
        sessions_spawn,
        addresses_session=True,
    ),
    ToolSpec(
        ToolName.LIST,
        "List the sessions you may see, newest first.",
        ListArgs,
        sessions_list,
        addresses_session=False,
    ),
    ToolSpec(
        ToolName.HISTORY,
        "Read a session's transcript.",
        HistoryArgs,
        sessions_history,
        addresses_session=True,
    ),
)
