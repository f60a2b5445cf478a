"""The lifecycle operations: delete (erasure), reset, archive, unarchive and label.

Each names its session like a read (the resolver, intent READ, never creates;
an alias is not followed: the key itself is acted on), is audited with who and
why, and leaves nothing that could bring the session back by itself:

- **delete** erases the transcript, its archives and its runs; a tombstone keeps
  the key, when, by whom and why. A main session needs ``force`` and stays
  deleted (start-up does not create it again; `sessiongate sessions create` or an
  address under ``createOnMiss`` made after the delete does, as a new session).
- **reset** gives the key a fresh, empty transcript; the old one is archived
  (default) or deleted; a run in flight ends as interrupted and its reply is
  dropped, never written into the fresh transcript.
- **archive / unarchive** set the status; an archived session still takes messages.
"""

from __future__ import annotations

from typing import Any

from sessiongate.audit import Decision
from sessiongate.errors import ConflictError
from sessiongate.keys import SessionKind
from sessiongate.outcomes import ShownSession
from sessiongate.resolver import Caller, Intent
from sessiongate.store.base import Erasure, ResetOutcome, SessionRecord, SessionStatus
from sessiongate.tool_names import ToolName
from sessiongate.tools.args import DeleteArgs, PatchArgs, ResetArgs, StatusArgs
from sessiongate.tools.base import ToolContext, ToolSpec

__all__ = [
    "LIFECYCLE_TOOLS",
    "erase",
    "sessions_archive",
    "sessions_delete",
    "sessions_patch",
    "sessions_reset",
    "sessions_unarchive",
    "set_status",
]


def who(caller: Caller) -> str:
    """How a tombstone names whoever deleted: their session (or operator) and entry point."""
    return f"{caller.session_key or 'operator'} via {caller.entry_point}"


async def _target(ctx: ToolContext, reference: str) -> SessionRecord:
    """The session the operation acts on: read like any reference, never created."""
    resolution = await ctx.resolver.resolve(reference, ctx.caller, Intent.READ, follow_alias=False)
    return resolution.session


async def _audit(
    ctx: ToolContext, decision: Decision, key: str, reason: str | None, **extra: Any
) -> None:
    audit = ctx.resolver.audit
    if audit is None:
        return
    event = {"decision": decision, "caller": ctx.caller.to_wire(), "canonicalKey": key}
    await audit.record({**event, "reason": reason, **extra})


async def erase(ctx: ToolContext, session: SessionRecord, reason: str | None) -> Erasure:
    """Delete a session that was resolved already (the delete tool and retention)."""
    erasure = await ctx.store.delete_session(session.key, by=who(ctx.caller), reason=reason)
    ctx.runs.cancel_session(session.key)
    ctx.resolver.forget(session.key)
    await _audit(ctx, Decision.ERASED, session.key, reason, **erasure.to_wire())
    return erasure


async def set_status(
    ctx: ToolContext, session: SessionRecord, status: SessionStatus, reason: str | None
) -> SessionRecord:
    """Archive or unarchive a session that was resolved already (the tools and retention)."""
    await ctx.store.set_status(session.key, status)
    decision = Decision.ARCHIVED if status is SessionStatus.ARCHIVED else Decision.UNARCHIVED
    await _audit(ctx, decision, session.key, reason)
    found = await ctx.store.find(session.key)
    return found or session


async def sessions_delete(ctx: ToolContext, args: DeleteArgs) -> Erasure:
    session = await _target(ctx, args.session_key)
    if session.kind == SessionKind.MAIN and not args.force:
        raise ConflictError(
            f"{session.key!r} is {session.agent_id}'s main session: deleting it needs force"
            " (it then stays deleted; to start it afresh, reset it instead)",
            details={"sessionKey": session.key, "problems": ["force: required for a main"]},
        )
    return await erase(ctx, session, args.reason)


async def sessions_reset(ctx: ToolContext, args: ResetArgs) -> ResetOutcome:
    session = await _target(ctx, args.session_key)
    archive = args.old_transcript == "archive"
    outcome = await ctx.store.reset_session(
        session.key, archive=archive, by=who(ctx.caller), reason=args.reason
    )
    ctx.runs.cancel_session(session.key, keep=outcome.session.incarnation)
    ctx.resolver.forget(session.key)
    await _audit(ctx, Decision.RESET, session.key, args.reason, **outcome.to_wire())
    return outcome


async def sessions_archive(ctx: ToolContext, args: StatusArgs) -> ShownSession:
    session = await _target(ctx, args.session_key)
    record = await set_status(ctx, session, SessionStatus.ARCHIVED, args.reason)
    return ShownSession(record, args.session_key)


async def sessions_unarchive(ctx: ToolContext, args: StatusArgs) -> ShownSession:
    session = await _target(ctx, args.session_key)
    record = await set_status(ctx, session, SessionStatus.ACTIVE, args.reason)
    return ShownSession(record, args.session_key)


async def sessions_patch(ctx: ToolContext, args: PatchArgs) -> ShownSession:
    session = await _target(ctx, args.session_key)
    await ctx.store.set_label(session.key, args.label)
    await _audit(ctx, Decision.LABELLED, session.key, args.reason, label=args.label)
    record = await ctx.store.find(session.key)
    return ShownSession(record or session, args.session_key)


LIFECYCLE_TOOLS: tuple[ToolSpec[Any], ...] = (
    ToolSpec(
        ToolName.DELETE,
        "Delete a session for good: its transcript and runs are erased; a main session "
        "needs force. Nothing re-creates it by itself.",
        DeleteArgs,
        sessions_delete,
        addresses_session=True,
    ),
    ToolSpec(
        ToolName.RESET,
        "Give a session a fresh, empty transcript; the old one is archived (or deleted).",
        ResetArgs,
        sessions_reset,
        addresses_session=True,
    ),
    ToolSpec(
        ToolName.ARCHIVE,
        "Archive a session (it is kept and still takes messages).",
        StatusArgs,
        sessions_archive,
        addresses_session=True,
    ),
    ToolSpec(
        ToolName.UNARCHIVE,
        "Make an archived session active again.",
        StatusArgs,
        sessions_unarchive,
        addresses_session=True,
    ),
    ToolSpec(
        ToolName.PATCH,
        "Set or clear a session's label.",
        PatchArgs,
        sessions_patch,
        addresses_session=True,
    ),
)
