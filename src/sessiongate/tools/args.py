"""The operations' argument models, shared by every surface (camelCase on the wire).

Each field is spelled with a type from `sessiongate.fields`, so a limit is set in one
place; a surface whose wire shape differs (OpenClaw's methods, the WebSocket ``agent``)
has its own model made of the same types, parsed once and turned into these without
validating again (`SendArgs.model_construct`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema, model_validator

from sessiongate.fields import (
    ActiveMinutes,
    HistoryLimit,
    IdempotencyKey,
    Label,
    ListLimit,
    MessageText,
    Reason,
    Seq,
    SessionRef,
    WaitSeconds,
)
from sessiongate.keys import SessionKind
from sessiongate.tools.base import ToolArgs

__all__ = [
    "DeleteArgs",
    "HistoryArgs",
    "Kind",
    "ListArgs",
    "OpenClawKind",
    "PatchArgs",
    "PruneArgs",
    "ResetArgs",
    "SendArgs",
    "SessionArgs",
    "SpawnArgs",
    "StatusArgs",
]

# the session kinds of keys.py, offered inline (not as a $ref) in the schema LLMs and MCP see
Kind = Annotated[
    SessionKind,
    Field(strict=False),  # the wire sends the value
    WithJsonSchema({"enum": [kind.value for kind in SessionKind], "type": "string"}),
]
OpenClawKind = Literal["main", "group", "cron", "hook", "node", "other"]


class ListArgs(ToolArgs):
    agent_id: str | None = None
    kind: Kind | None = None
    limit: ListLimit = 50
    cursor: str | None = None
    # OpenClaw's arguments: they filter each page, so a page may hold fewer than `limit`.
    kinds: list[OpenClawKind] | None = None
    active_minutes: ActiveMinutes | None = None
    message_limit: int = Field(default=0, ge=0, le=20)


class HistoryArgs(ToolArgs):
    session_key: SessionRef
    limit: HistoryLimit = 50
    before: Seq | None = None
    include_tools: bool = False  # OpenClaw's; tool calls are not kept in transcripts here
    follow_alias: bool = True  # false: the key's own transcript (an archived phantom's)


def must_exist_as_create_on_miss(
    must_exist: bool | None, create_on_miss: bool | None
) -> bool | None:
    """``mustExist: true`` is another name for ``createOnMiss: false`` (the CLI's
    ``--must-exist``, the client's ``must_exist=True``, the page's "Must exist")."""
    if not must_exist:
        return create_on_miss
    if create_on_miss is True:
        raise ValueError("mustExist: true and createOnMiss: true contradict each other")
    return False


class SendArgs(ToolArgs):
    session_key: SessionRef | None = None
    label: str | None = None
    agent_id: str | None = None
    message: MessageText
    timeout_seconds: WaitSeconds = 30
    create_on_miss: bool | None = None
    must_exist: bool | None = None  # true: the same as createOnMiss false
    idempotency_key: IdempotencyKey | None = None

    @model_validator(mode="after")
    def _target(self) -> SendArgs:
        if (self.session_key is None) == (self.label is None):
            raise ValueError("give exactly one of sessionKey or label")
        self.create_on_miss = must_exist_as_create_on_miss(self.must_exist, self.create_on_miss)
        return self


class SpawnArgs(ToolArgs):
    agent_id: str
    task: MessageText
    label: Label | None = None
    parent_session_key: SessionRef | None = None
    session_key: SessionRef | None = None


class SessionArgs(ToolArgs):
    """One session, by reference: show, resolve, subscribe."""

    session_key: SessionRef
    follow_alias: bool = True  # false: the key's own session (an archived phantom)


class DeleteArgs(ToolArgs):
    """Erase a session: transcript, archives and runs; a tombstone keeps key, when, who, why."""

    session_key: SessionRef
    force: bool = False  # needed to delete an agent's main session
    reason: Reason | None = None


class ResetArgs(ToolArgs):
    """A fresh, empty transcript under the same key; the old one archived or deleted."""

    session_key: SessionRef
    old_transcript: Literal["archive", "delete"] = "archive"
    reason: Reason | None = None


class StatusArgs(ToolArgs):
    """Archive or unarchive a session."""

    session_key: SessionRef
    reason: Reason | None = None


class PatchArgs(ToolArgs):
    """Change a session's label (null removes it)."""

    session_key: SessionRef
    label: Label | None
    reason: Reason | None = None


class PruneArgs(ToolArgs):
    """Apply session.retention now; with dryRun (the default), only say what would go."""

    dry_run: bool = True
