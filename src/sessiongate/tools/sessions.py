"""The sessions_* tools, defined once for HTTP, WebSocket, the CLI and LLM agents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from pydantic import Field, model_validator

from sessiongate.errors import InvalidRequestError, SessionMovedError
from sessiongate.resolver import Intent, Resolution
from sessiongate.store.base import SessionRecord
from sessiongate.tools.base import ToolArgs, ToolContext, ToolSpec

__all__ = ["SESSION_TOOLS"]

T = TypeVar("T")

Kind = Literal["main", "direct", "group", "channel", "subagent", "cron", "hook"]


class ListArgs(ToolArgs):
    agent_id: str | None = None
    kind: Kind | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


class HistoryArgs(ToolArgs):
    session_key: str
    limit: int = Field(default=50, ge=1, le=1000)
    before: int | None = Field(default=None, ge=1)


class SendArgs(ToolArgs):
    session_key: str | None = None
    label: str | None = None
    agent_id: str | None = None
    message: str = Field(min_length=1, max_length=200_000)
    timeout_seconds: float = Field(default=30, ge=0, le=600)
    create_on_miss: bool | None = None

    @model_validator(mode="after")
    def _target(self) -> SendArgs:
        if (self.session_key is None) == (self.label is None):
            raise ValueError("give exactly one of sessionKey or label")
        return self


class SpawnArgs(ToolArgs):
    agent_id: str
    task: str = Field(min_length=1, max_length=200_000)
    label: str | None = Field(default=None, max_length=200)
    parent_session_key: str | None = None
    session_key: str | None = None


async def sessions_list(ctx: ToolContext, args: ListArgs) -> dict[str, Any]:
    page = await ctx.gateway.list_sessions(
        ctx.caller, agent_id=args.agent_id, kind=args.kind, limit=args.limit, cursor=args.cursor
    )
    return {"sessions": [s.to_wire() for s in page.sessions], "nextCursor": page.next_cursor}


async def sessions_history(ctx: ToolContext, args: HistoryArgs) -> dict[str, Any]:
    resolution = await ctx.gateway.resolver.resolve(args.session_key, ctx.caller, Intent.READ)
    messages = await ctx.gateway.store.history(resolution.key, limit=args.limit, before=args.before)
    return {"sessionKey": resolution.key, "messages": [m.to_wire() for m in messages]}


async def _address(
    ctx: ToolContext,
    reference: str,
    create_on_miss: bool | None,
    deliver: Callable[[SessionRecord], Awaitable[T]],
) -> tuple[Resolution, T]:
    """Resolve an address and hand its session to `deliver` (which stores the message).

    A session this process remembered may have gained an alias since (doctor --fix
    in another process); storing refuses with SessionMovedError and the address is
    resolved once more, now following the alias.
    """
    resolver = ctx.gateway.resolver
    resolution = await resolver.resolve(reference, ctx.caller, Intent.ADDRESS, create_on_miss)
    try:
        return resolution, await deliver(resolution.session)
    except SessionMovedError:
        resolver.forget(resolution.key)
        resolution = await resolver.resolve(reference, ctx.caller, Intent.ADDRESS, False)
        return resolution, await deliver(resolution.session)


async def sessions_send(ctx: ToolContext, args: SendArgs) -> dict[str, Any]:
    reference = args.session_key
    if reference is None:
        assert args.label is not None
        reference = await ctx.gateway.key_for_label(args.label, args.agent_id, ctx.caller)
    elif args.agent_id is not None:
        raise InvalidRequestError(
            "sessions_send: agentId narrows a label; with sessionKey leave it out",
            details={"problems": ["agentId: only with label"]},
        )
    runs = ctx.gateway.runs

    def deliver(session: SessionRecord) -> Awaitable[dict[str, Any]]:
        return runs.send(session, args.message, ctx.caller, args.timeout_seconds)

    resolution, result = await _address(ctx, reference, args.create_on_miss, deliver)
    if resolution.warnings:
        result["warnings"] = resolution.warnings
    return result


async def sessions_spawn(ctx: ToolContext, args: SpawnArgs) -> dict[str, Any]:
    gateway = ctx.gateway
    parent_ref = args.parent_session_key or ctx.caller.session_key
    parent = None
    if parent_ref is not None:
        parent = (await gateway.resolver.resolve(parent_ref, ctx.caller, Intent.ADDRESS)).session
    if args.session_key is not None:
        named, run = await _address(
            ctx, args.session_key, None, lambda s: gateway.runs.start(s, args.task, ctx.caller)
        )
        return {"status": "accepted", "childSessionKey": named.key, "runId": run.run_id}
    child = await gateway.resolver.create_child(args.agent_id, parent, ctx.caller, args.label)
    run = await gateway.runs.start(child, args.task, ctx.caller)
    return {"status": "accepted", "childSessionKey": child.key, "runId": run.run_id}


SESSION_TOOLS: dict[str, ToolSpec[Any]] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "sessions_send",
            "Send a message to a session by key (or label) and wait up to timeoutSeconds for "
            "the reply. A key that does not exist may be refused with SESSION_NOT_FOUND; read "
            "its suggestions and retry with one of them.",
            SendArgs,
            sessions_send,
            addresses_session=True,
        ),
        ToolSpec(
            "sessions_spawn",
            "Start a sub-agent in a fresh session with a task; returns at once with the child "
            "session key and run id.",
            SpawnArgs,
            sessions_spawn,
            addresses_session=True,
        ),
        ToolSpec(
            "sessions_list",
            "List the sessions you may see, newest first.",
            ListArgs,
            sessions_list,
            addresses_session=False,
        ),
        ToolSpec(
            "sessions_history",
            "Read a session's transcript.",
            HistoryArgs,
            sessions_history,
            addresses_session=True,
        ),
    )
}
