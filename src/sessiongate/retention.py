"""`session.retention`: which sessions the janitor archives and deletes, decided purely.

For each session the first rule whose ``agent`` and ``match`` globs fit decides:
an active session idle (no message, no change) for ``archiveAfterDays`` is
archived; an archived one left alone for ``deleteAfterDays`` since (archiving
sets its ``updatedAt``) is deleted — never a main session, and never a
quarantined one. `plan` takes the time as an argument, so a test (or
``sessiongate sessions prune --at``) can ask what would happen at any moment.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sessiongate.config import RetentionRule
from sessiongate.keys import SessionKind
from sessiongate.store.base import SessionRecord, SessionStatus, iso

__all__ = ["PruneReport", "RetentionAction", "plan"]

DAY_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class RetentionAction:
    """What retention does to one session, and why."""

    session_key: str
    agent_id: str
    action: Literal["archive", "delete"]
    idle_days: float
    rule: int  # index in session.retention.rules
    updated_at: float  # the session as planned: a change since cancels the action

    def to_wire(self) -> dict[str, Any]:
        return {
            "sessionKey": self.session_key,
            "agentId": self.agent_id,
            "action": self.action,
            "idleDays": round(self.idle_days, 3),
            "rule": f"session.retention.rules[{self.rule}]",
        }


@dataclass(frozen=True, slots=True)
class PruneReport:
    """A retention pass: what it did (or, in a dry run, would do)."""

    dry_run: bool
    at: float
    actions: tuple[RetentionAction, ...]
    done: tuple[str, ...] = ()  # keys acted on (a session that changed since is skipped)
    skipped: bool = False  # another gateway process runs retention right now

    def to_wire(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "at": iso(self.at),
            "archive": [a.session_key for a in self.actions if a.action == "archive"],
            "delete": [a.session_key for a in self.actions if a.action == "delete"],
            "actions": [a.to_wire() for a in self.actions],
            "done": list(self.done),
            "skipped": self.skipped,
        }


def _rule_for(session: SessionRecord, rules: list[RetentionRule]) -> int | None:
    for index, rule in enumerate(rules):
        if fnmatch.fnmatchcase(session.agent_id, rule.agent) and fnmatch.fnmatchcase(
            session.key, rule.match
        ):
            return index
    return None


def decide(session: SessionRecord, rules: list[RetentionRule], at: float) -> RetentionAction | None:
    """What retention does to `session` at time `at` (None: nothing)."""
    index = _rule_for(session, rules)
    if index is None:
        return None
    rule = rules[index]
    idle = (at - session.updated_at) / DAY_SECONDS
    action: Literal["archive", "delete"] | None = None
    after = {"archive": rule.archive_after_days, "delete": rule.delete_after_days}
    if session.status == SessionStatus.ACTIVE:
        action = "archive"
    elif session.status == SessionStatus.ARCHIVED and session.kind != SessionKind.MAIN:
        action = "delete"  # mains are never deleted by retention
    days = after[action] if action is not None else None
    if action is None or days is None or idle < days:
        return None
    return RetentionAction(session.key, session.agent_id, action, idle, index, session.updated_at)


def plan(
    sessions: Iterable[SessionRecord], rules: list[RetentionRule], at: float
) -> tuple[RetentionAction, ...]:
    """Every action retention takes at time `at`, in the order the sessions came."""
    return tuple(a for s in sessions if (a := decide(s, rules, at)) is not None)
