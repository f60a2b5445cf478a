"""The one resolver: every entry point that addresses a session calls `Resolver.resolve`.

In order: parse and canonicalise (case, whitespace, bare ``main``, alias) →
authorise (visibility; an invisible session answers exactly like a missing
one) → look up → on a miss, apply the create-on-miss policy. Nothing is
written before the policy has decided.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sessiongate.audit import AuditLog, Decision
from sessiongate.config import SessionGateConfig
from sessiongate.errors import (
    AgentNotFoundError,
    InvalidSessionKeyError,
    SessionDeletedError,
    SessionNotFoundError,
)
from sessiongate.keys import (
    SessionKey,
    SessionKind,
    a2a_context_key,
    agent_key_prefix,
    agent_of_key,
    key_segments,
    main_key,
    parse_session_key,
    subagent_key,
)
from sessiongate.lints import KeyLint, agent_hint, closest_agents, lint_session_key
from sessiongate.metrics import GatewayMetrics
from sessiongate.policy import CreateOnMissPolicy, PolicyDecision, decide_create_on_miss
from sessiongate.store.base import (
    NewSession,
    Origin,
    Provenance,
    SessionLookup,
    SessionRecord,
    SessionStatus,
    deleted,
    now,
)

__all__ = ["Caller", "Intent", "Resolution", "Resolver"]

MAX_ALIAS_HOPS = 8
MAX_TREE_DEPTH = 32
MAX_SUGGESTIONS = 3
SUGGESTION_POOL = 100
SUGGESTION_CACHE_SECONDS = 2.0
KNOWN_SESSIONS = 10_000
MEMO_SIZE = 10_000
STARTUP_BATCH = 256
STARTUP_PAGE = 5000


def closest_keys(wanted: str, keys: list[str], limit: int = MAX_SUGGESTIONS) -> list[str]:
    """The keys that look like a slip of `wanted`: compared segment by segment.

    Same shape with one segment (a third of them for long keys) mistyped — a
    swapped, dropped or changed character or two — or one segment missing or
    extra. Cheap enough to run over every candidate on each refusal.
    """
    want = key_segments(wanted)
    scored = [(score, key) for key in keys if (score := _key_similarity(want, key_segments(key)))]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [key for _, key in scored[:limit]]


def _key_similarity(want: list[str], segments: list[str]) -> float:
    if len(want) == len(segments):
        similarities = [_segment_similarity(a, b) for a, b in zip(want, segments, strict=True)]
        differing = [s for s in similarities if s < 1.0]
        if len(differing) > max(1, len(want) // 3) or any(s < 0.5 for s in differing):
            return 0.0
        return sum(similarities) / len(similarities)
    if abs(len(want) - len(segments)) == 1:
        ratio = difflib.SequenceMatcher(None, want, segments).ratio()
        return ratio if ratio >= 0.7 else 0.0
    return 0.0


def _segment_similarity(a: str, b: str) -> float:
    """1.0 for equal segments; for near misses, how much of them their ends share."""
    if a == b:
        return 1.0
    longest = max(len(a), len(b))
    if abs(len(a) - len(b)) > 2:
        return 0.0
    return min(1.0, (_shared_start(a, b) + _shared_start(a[::-1], b[::-1])) / longest)


def _shared_start(a: str, b: str) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


class Intent(StrEnum):
    """What a reference names. Only an address may ever be created (by the policy);
    a miss of any other is SessionNotFoundError in every mode."""

    ADDRESS = "address"  # send to it: a miss goes to the create-on-miss policy
    PARENT = "parent"  # a spawn's parent
    OWN = "own"  # the caller's own session (who is speaking)
    READ = "read"  # look at it (show, history, resolve, subscribe)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who addresses: an operator (token, no session) or an agent speaking from its session."""

    session_key: str | None = None
    entry_point: str = "api"

    @property
    def is_operator(self) -> bool:
        return self.session_key is None

    @property
    def agent_id(self) -> str | None:
        if self.session_key is None:
            return None
        return agent_of_key(self.session_key)

    def to_wire(self) -> dict[str, Any]:
        return {"sessionKey": self.session_key, "entryPoint": self.entry_point}


@dataclass(frozen=True, slots=True)
class Resolution:
    """A session that an address resolved to, and how."""

    session: SessionRecord
    requested_key: str
    canonical_key: str
    decision: Decision  # hit | created | warned
    policy: PolicyDecision | None = None
    lints: tuple[KeyLint, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return self.session.key

    @property
    def warnings(self) -> list[str]:
        return [lint.message for lint in self.lints]

    def to_wire(self) -> dict[str, Any]:
        return {
            "session": self.session.to_wire(),
            "requestedKey": self.requested_key,
            "canonicalKey": self.canonical_key,
            "warnings": self.warnings,
        }


class Resolver:
    """Resolves references to sessions under one configuration and one store."""

    def __init__(
        self,
        config: SessionGateConfig,
        store: SessionLookup,
        metrics: GatewayMetrics,
        audit: AuditLog | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.audit = audit
        self.default_agent_id = config.default_agent.id
        self._recent: dict[str, tuple[float, list[SessionRecord]]] = {}
        self._known: OrderedDict[str, SessionRecord] = OrderedDict()
        self._parsed: dict[str, SessionKey] = {}
        self._lints: dict[str, tuple[KeyLint, ...]] = {}

    def parse(self, reference: str) -> SessionKey:
        """Parse a reference with this gateway's default agent (parsing is pure: memoised)."""
        if not isinstance(reference, str):
            return parse_session_key(reference, self.default_agent_id)  # raises the key error
        key = self._parsed.get(reference)
        if key is None:
            key = parse_session_key(reference, self.default_agent_id)
            if len(self._parsed) >= MEMO_SIZE:
                self._parsed.clear()
            self._parsed[reference] = key
        return key

    def lints(self, key: SessionKey) -> tuple[KeyLint, ...]:
        """The lints of a key under this config (both fixed for the resolver's life: memoised)."""
        found = self._lints.get(key.text)
        if found is None:
            found = tuple(lint_session_key(key, self.config))
            if len(self._lints) >= MEMO_SIZE:
                self._lints.clear()
            self._lints[key.text] = found
        return found

    async def ensure_startup_sessions(self) -> int:
        """Create each configured agent's main session; return how many were new."""
        existing = await self._existing_mains()
        agents = [a for a in self.config.agents.entries if main_key(a.id) not in existing]
        created = 0
        for start in range(0, len(agents), STARTUP_BATCH):  # concurrent: the store groups them
            batch = agents[start : start + STARTUP_BATCH]
            created += sum(await asyncio.gather(*(self._create_main(a.id) for a in batch)))
        return created

    async def _existing_mains(self) -> set[str]:
        """Keys of the main sessions already stored (one listing instead of one call each)."""
        found: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self.store.list_sessions(kind="main", limit=STARTUP_PAGE, cursor=cursor)
            found.update(s.key for s in page.sessions)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    async def _create_main(self, agent_id: str) -> bool:
        provenance = Provenance(Origin.STARTUP, "startup")
        return await self._create(NewSession(main_key(agent_id), agent_id, "main", provenance))

    async def _create(self, new: NewSession) -> bool:
        try:
            _, created = await self.store.ensure(new)
        except SessionDeletedError:  # a force-deleted main stays deleted (see sessions delete)
            return False
        self._recent.pop(new.agent_id, None)
        if created:
            self.metrics.created(new.provenance.origin)
        return created

    async def resolve(
        self,
        reference: str,
        caller: Caller,
        intent: Intent = Intent.ADDRESS,
        create_on_miss: bool | None = None,
        started: float | None = None,
        *,
        follow_alias: bool = True,
    ) -> Resolution:
        """Resolve `reference` for `caller`; raise SessionNotFoundError rather than invent one.

        `follow_alias=False` (reads only) gives the session stored under the key itself,
        e.g. an archived phantom whose alias leads to where its messages were recovered.
        `started` is when the request began (default: now): a key deleted since then
        is refused with SessionDeletedError, never created again by this request.
        """
        started = now() if started is None else started
        try:
            key = self.parse(reference)
        except InvalidSessionKeyError as exc:
            self.metrics.resolved(Decision.INVALID)
            exc.details["suggestions"] = await self._suggest_for_invalid(reference, caller)
            await self._audit_invalid(reference, None, caller, exc)
            raise
        agent_id = key.agent_id or self.default_agent_id
        if self.config.agent(agent_id) is None:
            self.metrics.resolved(Decision.REJECTED)
            error = await self._agent_not_found(reference, agent_id, key, caller)
            await self._audit_invalid(reference, key, caller, error)
            raise error
        record = self._known.get(key.text) if intent is Intent.ADDRESS else None
        if record is None:
            record = await self.store.find(key.text)
            if follow_alias or intent is not Intent.READ:
                record = await self._follow_aliases(record)
        if not await self._may_see(caller, key, agent_id, record):
            hidden_by = self._hidden_by(caller, agent_id)
            raise await self._not_found(reference, key, caller, hidden_by.split(" ")[0], hidden_by)
        lints = self.lints(key)
        if record is not None:
            self.metrics.resolved(Decision.HIT)
            self._remember(record)
            return Resolution(record, reference, key.text, Decision.HIT, None, lints)
        if intent is not Intent.ADDRESS:
            await self._refuse_if_deleted(reference, key, caller, None)
            raise await self._not_found(
                reference, key, caller, None, None, list(lints), Decision.NOT_FOUND
            )
        policy = decide_create_on_miss(self.config, key.text, agent_id, create_on_miss)
        if policy.mode is CreateOnMissPolicy.DENY:
            await self._refuse_if_deleted(reference, key, caller, policy.describe)
            raise await self._not_found(reference, key, caller, policy.describe, None, list(lints))
        return await self._create_on_miss(reference, key, agent_id, caller, policy, lints, started)

    async def _refuse_if_deleted(
        self, reference: str, key: SessionKey, caller: Caller, policy: str | None
    ) -> None:
        """A missing key the caller may see that was deleted: say so (SESSION_DELETED)."""
        tombstone = await self.store.find_tombstone(key.text)
        if tombstone is None:
            return
        self.metrics.resolved(Decision.DELETED)
        await self._audit(Decision.DELETED, reference, key, caller, policy, (), [])
        error = deleted(key.text, tombstone)
        error.details.update(requestedKey=reference, policy=policy)
        raise error

    async def _create_on_miss(
        self,
        reference: str,
        key: SessionKey,
        agent_id: str,
        caller: Caller,
        policy: PolicyDecision,
        lints: tuple[KeyLint, ...],
        started: float,
    ) -> Resolution:
        provenance = Provenance(Origin.ADDRESS, caller.entry_point, caller.session_key)
        new = NewSession(key.text, agent_id, key.kind.value, provenance, None, started)
        try:
            record, created = await self.store.ensure(new)
        except SessionDeletedError as exc:  # deleted after this request began
            self.metrics.resolved(Decision.DELETED)
            await self._audit(Decision.DELETED, reference, key, caller, policy.describe, lints, [])
            exc.details.update(requestedKey=reference, policy=policy.describe)
            raise
        self._recent.pop(agent_id, None)
        decision = Decision.WARNED if policy.mode is CreateOnMissPolicy.WARN else Decision.CREATED
        if not created:
            decision = Decision.HIT  # a concurrent caller created it first
        else:
            self.metrics.created(Origin.ADDRESS)
            # a warned line is what an operator reads before turning createOnMiss off:
            # it carries the lint and the session the key probably meant
            suggestions = (
                await self._suggestions(key, agent_id, caller, list(lints))
                if decision is Decision.WARNED
                else []
            )
            await self._audit(decision, reference, key, caller, policy.describe, lints, suggestions)
        self.metrics.resolved(decision)
        self._remember(record)
        return Resolution(record, reference, key.text, decision, policy, lints)

    def _remember(self, record: SessionRecord) -> None:
        """Keep a session that was just found for the next address of the same key.

        A remembered record goes stale by gaining an alias, being reset or being
        deleted; storing a message checks each (SessionMovedError, SessionResetError,
        SessionDeletedError) and the caller resolves again or is refused.
        """
        if record.alias_of is not None:
            return
        self._known[record.key] = record
        self._known.move_to_end(record.key)
        if len(self._known) > KNOWN_SESSIONS:
            self._known.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop what this process remembers of `key` (after it moved, was reset or deleted)."""
        self._known.pop(key, None)

    async def _follow_aliases(self, record: SessionRecord | None) -> SessionRecord | None:
        hops = 0
        while record is not None and record.alias_of and hops < MAX_ALIAS_HOPS:
            target = await self.store.find(record.alias_of)
            if target is None:
                return record
            record, hops = target, hops + 1
        return record

    def _hidden_by(self, caller: Caller, agent_id: str) -> str:
        """The visibility rule that keeps `agent_id`'s session from `caller`, in words that
        are true whether the session exists or not."""
        visibility = self.config.tools.sessions.visibility
        a2a = self.config.tools.agent_to_agent
        who = caller.session_key
        if agent_id != caller.agent_id and visibility == "all":
            if not a2a.enabled:
                return f"tools.agentToAgent.enabled=false keeps {who} to its own agent's sessions"
            return f"tools.agentToAgent.allow does not let {who} address agent {agent_id!r}"
        reach = {
            "self": "only its own session",
            "tree": "only its own session and the sessions it spawned",
            "agent": f"only sessions of agent {caller.agent_id!r}",
        }.get(visibility, "")
        return f"tools.sessions.visibility={visibility} lets {who} address {reach}"

    async def _may_see(
        self, caller: Caller, key: SessionKey, agent_id: str, record: SessionRecord | None
    ) -> bool:
        if caller.is_operator:
            return True
        if agent_id != caller.agent_id:
            return self._cross_agent_allowed(agent_id)
        visibility = self.config.tools.sessions.visibility
        target = record.key if record else key.text
        if visibility in ("agent", "all") or target == caller.session_key:
            return True
        if visibility == "self" or record is None:
            return False
        return await self._spawned_by(record, str(caller.session_key))

    async def may_see(self, caller: Caller, record: SessionRecord) -> bool:
        """Whether `caller` may see this stored session."""
        key = self.parse(record.key)
        return await self._may_see(caller, key, record.agent_id, record)

    def only_visible_agent(self, caller: Caller) -> str | None:
        """The one agent whose sessions `caller` may see; None for an operator or when
        agent-to-agent visibility may open other agents."""
        if caller.is_operator:
            return None
        a2a = self.config.tools.agent_to_agent
        if self.config.tools.sessions.visibility == "all" and a2a.enabled:
            return None
        return caller.agent_id

    def _may_reach(self, caller: Caller, agent_id: str) -> bool:
        """Whether `caller` may see any session of `agent_id`."""
        return (
            caller.is_operator or agent_id == caller.agent_id or self._cross_agent_allowed(agent_id)
        )

    def _cross_agent_allowed(self, agent_id: str) -> bool:
        a2a = self.config.tools.agent_to_agent
        if self.config.tools.sessions.visibility != "all" or not a2a.enabled:
            return False
        return any(fnmatch.fnmatchcase(agent_id, pattern) for pattern in a2a.allow)

    async def _spawned_by(self, record: SessionRecord, ancestor: str) -> bool:
        """Whether `ancestor` spawned `record`, however deeply: one test on the stored chain,
        so a hidden session deep in a tree is refused as fast as a missing key."""
        chain = record.provenance.ancestors
        if chain or record.provenance.parent_key is None:
            return ancestor in chain
        return await self._walk_up(record, ancestor)  # imported with a parent but no chain

    async def _walk_up(self, record: SessionRecord, ancestor: str) -> bool:
        current: SessionRecord | None = record
        for _ in range(MAX_TREE_DEPTH):
            if current is None or current.provenance.parent_key is None:
                return False
            if current.provenance.parent_key == ancestor:
                return True
            current = await self.store.find(current.provenance.parent_key)
        return False

    async def _agent_not_found(
        self, reference: str, agent_id: str, key: SessionKey | None, caller: Caller
    ) -> AgentNotFoundError:
        if key is None:  # an agent id, not an address (a spawn's agentId): name the agents
            close = [a for a in closest_agents(self.config, agent_id) if self._may_reach(caller, a)]
            hint = f"did you mean {' or '.join(close)}?" if close else None
            suggestions: list[str] = []
        else:
            suggestions = await self._suggest_agents(agent_id, key, caller)
            hint = None
        if hint is None and not suggestions and caller.is_operator:
            hint = agent_hint(self.config, agent_id)
        details = {
            "requestedKey": reference,
            "canonicalKey": key.text if key else None,
            "agentId": agent_id,
            "suggestions": suggestions,
        }
        return AgentNotFoundError.unknown(agent_id, hint, details)

    async def _suggest_agents(self, agent_id: str, key: SessionKey, caller: Caller) -> list[str]:
        """The requested key with its agent id corrected (the rest kept), for each configured
        agent close to `agent_id` whose session there `caller` may see."""
        prefix = agent_key_prefix(agent_id)
        rest = key.text.removeprefix(prefix) if key.text.startswith(prefix) else "main"
        suggestions = []
        for close in closest_agents(self.config, agent_id):
            candidate = self.parse(agent_key_prefix(close) + rest)
            record = await self._follow_aliases(await self.store.find(candidate.text))
            if await self._may_see(caller, candidate, close, record):
                suggestions.append(record.key if record else candidate.text)
        return list(dict.fromkeys(suggestions))

    async def _not_found(
        self,
        reference: str,
        key: SessionKey,
        caller: Caller,
        policy: str | None,
        hidden_by: str | None = None,
        lints: list[KeyLint] | None = None,
        decision: Decision = Decision.REJECTED,
    ) -> SessionNotFoundError:
        """The refusal for a key that is missing or not visible; `decision` is what the
        audit records: ``rejected`` (an address refused) or ``not-found`` (a lookup).
        `hidden_by` names the visibility rule when visibility decided (then `policy` is
        that rule's setting), else `policy` is the create-on-miss rule that refused."""
        agent_id = key.agent_id or self.default_agent_id
        if lints is None:
            lints = list(self.lints(key))
        suggestions = await self._suggestions(key, agent_id, caller, lints)
        self.metrics.resolved(decision)
        await self._audit(decision, reference, key, caller, policy, lints, suggestions)
        details = {
            "requestedKey": reference,
            "canonicalKey": key.text,
            "agentId": agent_id,
            "suggestions": suggestions,
            "lint": lints[0].message if lints else None,
            "policy": policy,
        }
        return SessionNotFoundError.refused(
            key.text, hidden_by=hidden_by, policy=policy, details=details
        )

    async def _suggestions(
        self, key: SessionKey, agent_id: str, caller: Caller, lints: list[KeyLint]
    ) -> list[str]:
        recent = {s.key: s for s in await self._recent_sessions(agent_id)}
        candidates = [lint.suggestion for lint in lints if lint.suggestion]
        candidates += closest_keys(key.text, list(recent))
        suggestions: list[str] = []
        for candidate in candidates:
            if candidate in suggestions or candidate == key.text:
                continue
            record = recent.get(candidate) or self._known.get(candidate)
            if record is None and (record := await self.store.find(candidate)) is not None:
                self._remember(record)
            if record and await self._may_see(caller, self.parse(candidate), agent_id, record):
                suggestions.append(candidate)
        return suggestions[:MAX_SUGGESTIONS]

    async def _recent_sessions(self, agent_id: str) -> list[SessionRecord]:
        """The agent's newest active sessions, for suggestions (re-read every few seconds,
        so a burst of refusals costs one query, not one per refusal)."""
        cached = self._recent.get(agent_id)
        if cached is not None and time.monotonic() - cached[0] < SUGGESTION_CACHE_SECONDS:
            return cached[1]
        page = await self.store.list_sessions(agent_id=agent_id, limit=SUGGESTION_POOL)
        records = [s for s in page.sessions if s.status == SessionStatus.ACTIVE]
        self._recent[agent_id] = (time.monotonic(), records)
        return records

    async def _suggest_for_invalid(self, reference: Any, caller: Caller) -> list[str]:
        """For a key that does not parse (a typo in a segment): visible keys of its agent."""
        if not isinstance(reference, str):
            return []
        text = reference.strip().lower()
        agent_id = agent_of_key(text)
        if agent_id is None or self.config.agent(agent_id) is None:
            return []
        recent = await self._recent_sessions(agent_id)
        visible = [s.key for s in recent if await self.may_see(caller, s)]
        return closest_keys(text, visible)

    async def _audit_invalid(
        self,
        reference: Any,
        key: SessionKey | None,
        caller: Caller,
        error: SessionNotFoundError | InvalidSessionKeyError,
    ) -> None:
        """Audit an address refused before any policy: a key that does not parse or names
        an agent that is not configured (decision ``invalid``)."""
        if self.audit is None:
            return
        await self.audit.record(
            {
                "decision": Decision.INVALID,
                "caller": caller.to_wire(),
                "requestedKey": reference if isinstance(reference, str) else repr(reference)[:200],
                "canonicalKey": key.text if key else None,
                "rule": error.code,
                "lint": [error.message],
                "suggestions": list(error.details.get("suggestions") or []),
            }
        )

    async def _audit(
        self,
        decision: str,
        reference: str,
        key: SessionKey,
        caller: Caller,
        policy: str | None,
        lints: tuple[KeyLint, ...] | list[KeyLint],
        suggestions: list[str],
    ) -> None:
        if self.audit is None:
            return
        await self.audit.record(
            {
                "decision": decision,
                "caller": caller.to_wire(),
                "requestedKey": reference,
                "canonicalKey": key.text,
                "rule": policy,
                "lint": [lint.message for lint in lints],
                "suggestions": suggestions,
            }
        )

    async def create_child(
        self, agent_id: str, parent: SessionRecord | None, caller: Caller, label: str | None
    ) -> SessionRecord:
        """Create a fresh ``agent:<id>:subagent:<uuid>`` session (sessions_spawn)."""
        if self.config.agent(agent_id) is None:
            raise await self._agent_not_found(agent_id, agent_id, None, caller)
        key = subagent_key(agent_id, str(uuid.uuid4()))
        parent_key = parent.key if parent else None
        # nearest first, as deep as visibility reaches: a long chain costs no more storage
        chain = (parent.key, *parent.provenance.ancestors)[:MAX_TREE_DEPTH] if parent else ()
        provenance = Provenance(
            Origin.SPAWN, caller.entry_point, caller.session_key, parent_key, chain
        )
        new = NewSession(key, agent_id, SessionKind.SUBAGENT.value, provenance, label)
        record, _ = await self.store.ensure(new)
        self._recent.pop(agent_id, None)
        self.metrics.created(Origin.SPAWN)
        return record

    async def create_context(self, agent_id: str, caller: Caller) -> SessionRecord:
        """Create a fresh ``agent:<id>:a2a:<uuid>`` session: an A2A message without a
        ``contextId`` starts a conversation on purpose (origin ``a2a``), for a caller that
        may reach the agent."""
        if self.config.agent(agent_id) is None or not self._may_reach(caller, agent_id):
            raise await self._agent_not_found(agent_id, agent_id, None, caller)
        key = a2a_context_key(agent_id, str(uuid.uuid4()))
        provenance = Provenance(Origin.A2A, caller.entry_point, caller.session_key)
        record, _ = await self.store.ensure(
            NewSession(key, agent_id, SessionKind.A2A.value, provenance)
        )
        self._recent.pop(agent_id, None)
        self.metrics.created(Origin.A2A)
        return record

    async def ensure_origin_session(
        self,
        key: str,
        origin: Origin,
        entry_point: str,
        label: str | None = None,
        decided_at: float | None = None,
    ) -> tuple[SessionRecord, bool]:
        """Create (or find) a session whose key is derived from a message's own origin.

        A deleted key is created again only when `decided_at` (the request's start)
        is after the delete; None (a repair) never re-creates one.
        """
        parsed = self.parse(key)
        agent_id = parsed.agent_id or self.default_agent_id
        if self.config.agent(agent_id) is None:
            raise await self._agent_not_found(key, agent_id, parsed, Caller(None, entry_point))
        provenance = Provenance(origin, entry_point)
        new = NewSession(parsed.text, agent_id, parsed.kind.value, provenance, label, decided_at)
        record, created = await self.store.ensure(new)
        self._recent.pop(agent_id, None)
        if created:
            self.metrics.created(origin)
        followed = await self._follow_aliases(record)  # a repaired key leads to its target
        return followed or record, created
