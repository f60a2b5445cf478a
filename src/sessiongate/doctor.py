"""`sessiongate doctor`: find phantom sessions and split brains, and repair them without loss.

A **phantom** is a session created by addressing (origin ``address``) or
imported from another system (origin ``imported``, e.g. OpenClaw's phantoms)
whose key today's configuration would never produce (it trips a lint, such as
a direct-message key for an agent whose ``dmScope`` is ``main``). Each comes
with its evidence: the first message, when it arrived, and who sent it (the
sending session and tool when it carries one, else the channel). A **split-brain
candidate** is two active conversation sessions (main / direct) of one agent
that took messages from the same peer in overlapping time windows.

A **re-created** key is one deleted on purpose (its tombstone remains) that a
session lives under again: doctor reports when and why it was deleted and where
the new session came from (its provenance), for a person to judge; it never
deletes it by itself.

Repair never deletes: the phantom's messages are copied into the canonical
session as recovered messages (original time, role, run and provenance kept in
``meta``), the phantom is archived, and an alias sends later addresses of the
phantom's key to the canonical session. Repair is idempotent.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sessiongate.audit import Decision
from sessiongate.gateway import Gateway
from sessiongate.keys import SessionKind, main_key
from sessiongate.lints import KeyLint
from sessiongate.store.base import MessageRecord, Origin, SessionRecord, SessionStatus, iso
from sessiongate.wire_fields import wire_fields

__all__ = [
    "Finding",
    "RepairPlan",
    "RepairResult",
    "phantom_lints",
    "phantom_of",
    "plan_repair",
    "repair",
    "scan",
]

CONVERSATION_KINDS = (SessionKind.MAIN, SessionKind.DIRECT)
PHANTOM_ORIGINS = (Origin.ADDRESS, Origin.IMPORTED)
EXCERPT = 120
INTER_SESSION_HEADER = "[Inter-session message]"
PAGE = 500
Progress = Callable[[SessionRecord], None]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem doctor found, and what `--fix` would do about it."""

    kind: str  # phantom | split-brain | recreated
    session_key: str
    agent_id: str
    reason: str
    canonical_key: str | None
    messages: int
    related: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def fixable(self) -> bool:
        return self.canonical_key is not None

    @property
    def fix(self) -> str:
        if self.kind == "recreated":
            return (
                "review by hand: delete it again (sessiongate sessions delete) if it should not be"
            )
        if not self.fixable:
            return "review by hand: doctor never guesses which conversation is the real one"
        return (
            f"copy {self.messages} message(s) into {self.canonical_key}, archive "
            f"{self.session_key}, alias it to {self.canonical_key}"
        )

    def to_wire(self) -> dict[str, Any]:
        wire = {**wire_fields(self, ("evidence",)), "related": list(self.related)}
        return {**wire, "fixable": self.fixable, "fix": self.fix, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
class RepairResult:
    session_key: str
    canonical_key: str
    copied: int

    def to_wire(self) -> dict[str, Any]:
        return wire_fields(self)


async def active_sessions(gateway: Gateway) -> AsyncIterator[SessionRecord]:
    """Every active session, newest first, page by page."""
    cursor: str | None = None
    while True:
        page = await gateway.store.list_sessions(limit=PAGE, cursor=cursor)
        for session in page.sessions:
            if session.status == SessionStatus.ACTIVE and session.alias_of is None:
                yield session
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def phantom_lints(gateway: Gateway, key: str, origin: str) -> tuple[KeyLint, ...]:
    """Why a session created by addressing (or imported) could not be reached today
    (empty: it is fine)."""
    if origin not in PHANTOM_ORIGINS:
        return ()
    resolver = gateway.resolver
    return resolver.lints(resolver.parse(key))


def phantom_of(gateway: Gateway, session: SessionRecord) -> Finding | None:
    """The phantom finding for this session, or None when it is not one."""
    lints = phantom_lints(gateway, session.key, session.provenance.origin)
    if not lints:
        return None
    target = lints[0].suggestion
    if target is None and gateway.config.agent(session.agent_id) is not None:
        target = main_key(session.agent_id)
    return Finding(
        "phantom", session.key, session.agent_id, lints[0].message, target, session.last_seq
    )


async def _with_evidence(gateway: Gateway, finding: Finding, session: SessionRecord) -> Finding:
    """The finding with its first message, its time and who sent it."""
    first = await gateway.store.history(session.key, limit=1, before=2)
    evidence: dict[str, Any] = {"origin": session.provenance.origin,
                                "createdAt": iso(session.created_at)}  # fmt: skip
    if first:
        evidence.update(_first_message_evidence(first[0]))
    sender = evidence.get("sender") or session.provenance.caller_key
    if sender:
        evidence["sender"] = sender
        evidence["createdBy"] = f"{sender} via {evidence.get('tool') or 'an address'}"
    else:
        channel = evidence.get("channel") or session.provenance.entry_point or "unknown"
        evidence["createdBy"] = f"an operator or script addressing the key (channel {channel})"
    return dataclasses.replace(finding, evidence=evidence)


def _first_message_evidence(message: MessageRecord) -> dict[str, Any]:
    text = message.content
    if text.startswith(INTER_SESSION_HEADER):  # OpenClaw's envelope: the words are on line 3
        text = text.split("\n", 2)[-1]
    found: dict[str, Any] = {
        "firstMessage": text[:EXCERPT],
        "firstMessageAt": iso(message.created_at),
    }
    caller = message.meta.get("caller")
    if caller:
        found["sender"] = caller
        found["tool"] = message.meta.get("entryPoint")
    if message.meta.get("channel"):
        found["channel"] = message.meta["channel"]
    return found


async def _peer_windows(gateway: Gateway, session: SessionRecord) -> dict[str, tuple[float, float]]:
    """For each peer that wrote into the session: its first and last message time."""
    windows: dict[str, tuple[float, float]] = {}
    for message in await all_messages(gateway, session.key, session.last_seq):
        peer = message.meta.get("peer") or message.meta.get("caller")
        if message.role != "user" or not peer or message.meta.get("recovered"):
            continue
        first, last = windows.get(peer, (message.created_at, message.created_at))
        windows[peer] = (min(first, message.created_at), max(last, message.created_at))
    return windows


async def all_messages(gateway: Gateway, key: str, count: int) -> list[MessageRecord]:
    return await gateway.store.history(key, limit=max(count, 1), before=None)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


async def _split_brains(
    gateway: Gateway, sessions: list[SessionRecord], phantoms: set[str]
) -> list[Finding]:
    """Pairs of one agent's sessions that one peer wrote into at overlapping times.

    Sessions are grouped by (agent, peer) first, so only sessions that share a
    peer are ever compared.
    """
    by_peer: dict[tuple[str, str], list[tuple[SessionRecord, tuple[float, float]]]] = {}
    for session in sessions:
        if session.key in phantoms:
            continue
        for peer, window in (await _peer_windows(gateway, session)).items():
            by_peer.setdefault((session.agent_id, peer), []).append((session, window))
    findings: dict[tuple[str, str], Finding] = {}
    for (_, peer), entries in sorted(by_peer.items()):
        for (a, window_a), (b, window_b) in itertools.combinations(entries, 2):
            pair = (min(a.key, b.key), max(a.key, b.key))
            if pair not in findings and _overlap(window_a, window_b):
                findings[pair] = _split_brain(a, b, peer)
    return list(findings.values())


def _split_brain(a: SessionRecord, b: SessionRecord, peer: str) -> Finding:
    """Merge the session created by addressing into the other; otherwise leave it to a person."""
    reason = f"{peer} wrote into both {a.key} and {b.key} at overlapping times"
    by_address = [s for s in (a, b) if s.provenance.origin == Origin.ADDRESS]
    if len(by_address) == 1:
        stray = by_address[0]
        keep = b if stray is a else a
        return Finding(
            "split-brain", stray.key, stray.agent_id, reason, keep.key, stray.last_seq, (keep.key,)
        )
    return Finding("split-brain", b.key, b.agent_id, reason, None, b.last_seq, (a.key,))


async def scan(gateway: Gateway, progress: Progress | None = None) -> list[Finding]:
    """Every phantom and split-brain candidate in the store (read-only)."""
    findings: list[Finding] = []
    conversations: list[SessionRecord] = []
    created: dict[str, float] = {}
    async for session in active_sessions(gateway):
        if progress:
            progress(session)
        if phantom := phantom_of(gateway, session):
            findings.append(await _with_evidence(gateway, phantom, session))
            created[session.key] = session.created_at
        if session.kind in CONVERSATION_KINDS:
            conversations.append(session)
    # newest first by creation time, as `sessions list` (an import keeps original times)
    findings.sort(key=lambda f: created.get(f.session_key, 0.0), reverse=True)
    phantoms = {f.session_key for f in findings}
    findings += await _split_brains(gateway, conversations, phantoms)
    findings += await recreated(gateway)
    return findings


async def recreated(gateway: Gateway) -> list[Finding]:
    """Keys deleted on purpose that a session lives under again, with both provenances."""
    found: list[Finding] = []
    for tombstone in await gateway.tombstones():
        session = await gateway.store.find(tombstone.key)
        if session is None or session.created_at < tombstone.deleted_at:
            continue
        p = session.provenance
        by = f" by {tombstone.deleted_by}" if tombstone.deleted_by else ""
        reason = (
            f"deleted at {iso(tombstone.deleted_at)}{by}, created again at "
            f"{iso(session.created_at)} (origin {p.origin} via {p.entry_point or 'unknown'})"
        )
        evidence = {
            "tombstone": tombstone.to_wire(),
            "provenance": {**p.to_wire(), "createdAt": iso(session.created_at)},
        }
        found.append(Finding("recreated", session.key, session.agent_id, reason, None,
                             session.last_seq, (), evidence))  # fmt: skip
    return found


@dataclass(frozen=True, slots=True)
class RepairPlan:
    """Exactly what repairing one finding will do (the dry run)."""

    finding: Finding
    moves: tuple[MessageRecord, ...]  # copied into the canonical session, in this order
    already_copied: int  # by an earlier repair that stopped half-way

    def to_wire(self) -> dict[str, Any]:
        return {
            "finding": self.finding.to_wire(),
            "moves": [m.to_wire() for m in self.moves],
            "alreadyCopied": self.already_copied,
            "archive": self.finding.session_key,
            "alias": {"from": self.finding.session_key, "to": self.finding.canonical_key},
        }


async def plan_repair(gateway: Gateway, finding: Finding) -> RepairPlan:
    """What `repair` would do for `finding`, without writing anything."""
    assert finding.canonical_key is not None
    target = await gateway.store.find(finding.canonical_key)
    already = set()
    if target is not None:
        already = {
            m.meta.get("originalSeq")
            for m in await all_messages(gateway, target.key, target.last_seq)
            if m.meta.get("recoveredFrom") == finding.session_key
        }
    phantom = await gateway.store.find(finding.session_key)
    assert phantom is not None
    messages = await all_messages(gateway, phantom.key, phantom.last_seq)
    # a repair that stopped half-way is resumed, never duplicated
    moves = tuple(m for m in messages if m.seq not in already)
    return RepairPlan(finding, moves, len(messages) - len(moves))


async def _merge(gateway: Gateway, finding: Finding) -> RepairResult:
    assert finding.canonical_key is not None
    store = gateway.store
    target, _ = await gateway.resolver.ensure_origin_session(
        finding.canonical_key, Origin.REPAIR, "doctor"
    )
    plan = await plan_repair(gateway, finding)
    copied = 0
    for message in plan.moves:
        meta = {
            **message.meta,
            "recovered": True,
            "recoveredFrom": finding.session_key,
            "originalSeq": message.seq,
        }
        await store.append_message(
            target.key,
            message.role,
            message.content,
            run_id=message.run_id,
            meta=meta,
            created_at=message.created_at,
        )
        copied += 1
    await store.set_status(finding.session_key, SessionStatus.ARCHIVED)
    await store.set_alias(finding.session_key, target.key)
    return RepairResult(finding.session_key, target.key, copied)


async def repair(gateway: Gateway, findings: list[Finding]) -> list[RepairResult]:
    """Apply every fixable finding; record each repair in the audit log."""
    results = []
    for finding in findings:
        if not finding.fixable:
            continue
        result = await _merge(gateway, finding)
        await gateway.audit.record(
            {"decision": Decision.REPAIRED, **result.to_wire(), "reason": finding.reason}
        )
        results.append(result)
    return results
