"""The one resolver: every entry point that addresses a session calls `Resolver.resolve`.

In order: parse and canonicalise (case, whitespace, bare ``main``, alias) →
authorise (visibility; an invisible session answers exactly like a missing
one) → look up → on a miss, apply the create-on-miss policy. Nothing is
written before the policy has decided.

The parts are small and separate (`sessiongate.resolution`): `Visibility`,
`Suggestions`, `SessionCreation` (start-up, child, A2A context, origin, an address
the policy allows) and `KnownSessions` (the sessions this process remembers). The
retry that cache needs lives here too: `deliver` stores into a remembered session,
and if that session moved, was reset or was deleted before the request began, forgets
it and resolves again.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import sessiongate.tracing as tracing
from sessiongate.audit import AuditLog, Decision
from sessiongate.config import SessionGateConfig
from sessiongate.errors import (
    AgentNotFoundError,
    InvalidSessionKeyError,
    SessionDeletedError,
    SessionGateError,
    SessionMovedError,
    SessionNotFoundError,
    SessionResetError,
)
from sessiongate.keys import SessionKey, a2a_context_key, parse_session_key
from sessiongate.lints import KeyLint, agent_hint, lint_session_key
from sessiongate.metrics import GatewayMetrics
from sessiongate.policy import CreateOnMissPolicy, PolicyDecision, decide_create_on_miss
from sessiongate.resolution.aliases import follow_aliases
from sessiongate.resolution.caller import Caller
from sessiongate.resolution.creation import SessionCreation
from sessiongate.resolution.known import KnownSessions
from sessiongate.resolution.suggestions import Suggestions, closest_keys
from sessiongate.resolution.visibility import Visibility
from sessiongate.store.base import (
    Origin,
    SessionLookup,
    SessionRecord,
    Tombstone,
    deleted,
    now,
)

__all__ = ["Caller", "Intent", "Resolution", "Resolver", "closest_keys"]

T = TypeVar("T")


class _Unread:
    """A tombstone not read yet (`None` is: read, and there is none)."""


_UNREAD = _Unread()

MEMO_SIZE = 10_000


class Intent(StrEnum):
    """What a reference names. Only an address may ever be created (by the policy);
    a miss of any other is SessionNotFoundError in every mode."""

    ADDRESS = "address"  # send to it: a miss goes to the create-on-miss policy
    PARENT = "parent"  # a spawn's parent
    OWN = "own"  # the caller's own session (who is speaking)
    READ = "read"  # look at it (show, history, resolve, subscribe)


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
        self.known = KnownSessions()
        self.visibility = Visibility(config, store.find)
        self.suggestions = Suggestions(config, store, self.visibility, self.known, self.parse)
        self.creation = SessionCreation(config, store, metrics, self.suggestions.sessions_changed)
        self._parsed: dict[str, SessionKey] = {}
        self._lints: dict[str, tuple[KeyLint, ...]] = {}
        self._policies: dict[tuple[str, bool | None], PolicyDecision] = {}

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

    def policy(self, key: SessionKey, agent_id: str, create_on_miss: bool | None) -> PolicyDecision:
        """The create-on-miss policy of a key under this config, as a call asks it (fixed for
        the resolver's life, like the config: memoised)."""
        memo = (key.text, create_on_miss)
        found = self._policies.get(memo)
        if found is None:
            found = decide_create_on_miss(self.config, key.text, agent_id, create_on_miss)
            if len(self._policies) >= MEMO_SIZE:
                self._policies.clear()
            self._policies[memo] = found
        return found

    async def ensure_startup_sessions(self) -> int:
        """Create each configured agent's main session; return how many were new."""
        return await self.creation.startup_mains()

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

        With traces on, a ``sessiongate.resolve`` span says what was asked and decided.
        """
        args = (reference, caller, intent, create_on_miss, started, follow_alias)
        if not tracing.enabled():
            return await self._resolve(*args)
        attributes = {
            "sessiongate.requested_key": reference,
            "sessiongate.caller": caller.session_key or "operator",
            "sessiongate.entry_point": caller.entry_point,
            "sessiongate.intent": intent.value,
        }
        with tracing.span("sessiongate.resolve", attributes) as current:
            try:
                resolution = await self._resolve(*args)
            except SessionGateError as exc:
                tracing.set_attributes(current, **_refusal_attributes(exc))
                raise
            rule = resolution.policy.describe if resolution.policy else None
            tracing.set_attributes(
                current,
                canonical_key=resolution.canonical_key,
                decision=str(resolution.decision),
                rule=rule,
            )
            return resolution

    async def _resolve(
        self,
        reference: str,
        caller: Caller,
        intent: Intent,
        create_on_miss: bool | None,
        started: float | None,
        follow_alias: bool,
    ) -> Resolution:
        """Resolve `reference` for `caller`; raise SessionNotFoundError rather than invent one.

        `follow_alias=False` (reads only) gives the session stored under the key itself,
        e.g. an archived phantom whose alias leads to where its messages were recovered.
        `started` is when the request began (default: now): a key deleted since then
        is refused with SessionDeletedError, never created again by this request.
        """
        started = now() if started is None else started
        key, agent_id = await self._parse_address(reference, caller)
        policy = self.policy(key, agent_id, create_on_miss)
        record = self.known.get(key.text) if intent is Intent.ADDRESS else None
        remembered = record is not None
        tombstone: Tombstone | _Unread | None = _UNREAD
        if record is None:
            record, tombstone = await self._look_up(key.text, intent, policy)
            if follow_alias or intent is not Intent.READ:
                record = await follow_aliases(self.store.find, record)
        if not await self.visibility.may_see(caller, key.text, agent_id, record):
            if remembered:  # refuse as slowly as a key that is not there: no timing leak
                await self._look_up(key.text, intent, policy)
            hidden_by = self.visibility.hidden_by(caller, agent_id)
            raise await self._not_found(reference, key, caller, hidden_by.split(" ")[0], hidden_by)
        lints = self.lints(key)
        if record is not None:
            self.metrics.resolved(Decision.HIT)
            if not remembered:
                self.known.remember(record)
            return Resolution(record, reference, key.text, Decision.HIT, None, lints)
        if intent is not Intent.ADDRESS:
            await self._refuse_if_deleted(reference, key, caller, None, tombstone)
            raise await self._not_found(
                reference, key, caller, None, None, list(lints), Decision.NOT_FOUND
            )
        if policy.mode is CreateOnMissPolicy.DENY:
            await self._refuse_if_deleted(reference, key, caller, policy.describe, tombstone)
            raise await self._not_found(reference, key, caller, policy.describe, None, list(lints))
        return await self._create_on_miss(reference, key, agent_id, caller, policy, lints, started)

    async def _look_up(
        self, key: str, intent: Intent, policy: PolicyDecision
    ) -> tuple[SessionRecord | None, Tombstone | _Unread | None]:
        """The stored session of `key`, and its tombstone where a miss would be refused: one
        store round trip, not two (on SQLite one call on the store thread). An address a
        miss would refuse reads both, hit or not (a refusal costs no more hops than a hit);
        a read reads the tombstone only on a miss. A hit's tombstone is not used (unread)."""
        if intent is Intent.ADDRESS and policy.mode is not CreateOnMissPolicy.DENY:
            return await self.store.find(key), _UNREAD
        always = intent is Intent.ADDRESS
        record, tombstone = await self.store.find_with_tombstone(key, always=always)
        return record, _UNREAD if record is not None else tombstone

    async def _refuse_if_deleted(
        self,
        reference: str,
        key: SessionKey,
        caller: Caller,
        policy: str | None,
        tombstone: Tombstone | _Unread | None = _UNREAD,
    ) -> None:
        """A missing key the caller may see that was deleted: say so (SESSION_DELETED)."""
        if isinstance(tombstone, _Unread):
            tombstone = await self.store.find_tombstone(key.text)
        if tombstone is None:
            return
        self.metrics.resolved(Decision.DELETED)
        await self._audit(Decision.DELETED, reference, key, caller, policy, (), [])
        error = deleted(key.text, tombstone)
        error.details.update(requestedKey=reference, policy=policy)
        raise error

    async def deliver(
        self,
        reference: str,
        caller: Caller,
        create_on_miss: bool | None,
        store: Callable[[SessionRecord], Awaitable[T]],
    ) -> tuple[Resolution, T]:
        """Resolve an address and hand its session to `store` (which stores a message).

        A session this process remembered may have gained an alias or been reset since
        (in another process); storing refuses (SessionMovedError, SessionResetError), and
        the address is forgotten and resolved once more (never creating). A session
        deleted before this request began is resolved once more too (the policy may
        create it anew); one deleted while the request was in flight is refused
        (SessionDeletedError), never re-created.
        """
        started = now()
        resolution = await self.resolve(reference, caller, Intent.ADDRESS, create_on_miss, started)
        try:
            return resolution, await store(resolution.session)
        except (SessionMovedError, SessionResetError):
            again: bool | None = False
        except SessionDeletedError as exc:
            deleted_at = exc.deleted_at
            if deleted_at is None or deleted_at + 0.001 >= started:
                raise
            again = create_on_miss  # remembered from before the delete: address it afresh
        self.known.forget(resolution.key)
        resolution = await self.resolve(reference, caller, Intent.ADDRESS, again, started)
        return resolution, await store(resolution.session)

    async def _parse_address(self, reference: str, caller: Caller) -> tuple[SessionKey, str]:
        """The canonical key and its agent; a key that does not parse, or names an agent
        that is not configured, is refused (and audited) here."""
        try:
            key = self.parse(reference)
        except InvalidSessionKeyError as exc:
            self.metrics.resolved(Decision.INVALID)
            exc.details["suggestions"] = await self.suggestions.for_invalid(reference, caller)
            await self._audit_invalid(reference, None, caller, exc)
            raise
        agent_id = key.agent_id or self.default_agent_id
        if self.config.agent(agent_id) is None:
            self.metrics.resolved(Decision.REJECTED)
            raise await self._refuse_agent(reference, agent_id, key, caller)
        return key, agent_id

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
        try:
            record, created = await self.creation.on_miss(key, agent_id, caller, started)
        except SessionDeletedError as exc:  # deleted after this request began
            self.metrics.resolved(Decision.DELETED)
            await self._audit(Decision.DELETED, reference, key, caller, policy.describe, lints, [])
            exc.details.update(requestedKey=reference, policy=policy.describe)
            raise
        decision = Decision.WARNED if policy.mode is CreateOnMissPolicy.WARN else Decision.CREATED
        if not created:
            decision = Decision.HIT  # a concurrent caller created it first
        else:
            # a warned line is what an operator reads before turning createOnMiss off:
            # it carries the lint and the session the key probably meant
            suggestions = (
                await self.suggestions.for_missing(key, agent_id, caller, list(lints))
                if decision is Decision.WARNED
                else []
            )
            await self._audit(decision, reference, key, caller, policy.describe, lints, suggestions)
        self.metrics.resolved(decision)
        self.known.remember(record)
        return Resolution(record, reference, key.text, decision, policy, lints)

    def forget(self, key: str) -> None:
        """Drop what this process remembers of `key` (it was just deleted or reset here)."""
        self.known.forget(key)

    async def may_see(self, caller: Caller, record: SessionRecord) -> bool:
        """Whether `caller` may see this stored session."""
        return await self.visibility.may_see(caller, record.key, record.agent_id, record)

    def only_visible_agent(self, caller: Caller) -> str | None:
        """The one agent whose sessions `caller` may see; None for an operator or when
        agent-to-agent visibility may open other agents."""
        return self.visibility.only_visible_agent(caller)

    async def _agent_not_found(
        self, reference: str, agent_id: str, key: SessionKey | None, caller: Caller
    ) -> AgentNotFoundError:
        if key is None:  # an agent id, not an address (a spawn's agentId): name the agents
            close = self.suggestions.close_agents(agent_id, caller)
            hint = f"did you mean {' or '.join(close)}?" if close else None
            suggestions: list[str] = []
        else:
            suggestions = await self.suggestions.for_unknown_agent(agent_id, key, caller)
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
        suggestions = await self.suggestions.for_missing(key, agent_id, caller, lints)
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

    async def _refuse_agent(
        self, reference: str, agent_id: str, key: SessionKey | None, caller: Caller
    ) -> AgentNotFoundError:
        """The refusal of an agent that is not configured, audited (decision ``invalid``)."""
        error = await self._agent_not_found(reference, agent_id, key, caller)
        await self._audit_invalid(reference, key, caller, error)
        return error

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
                "suggestions": list(suggestions),  # its own: the line is rendered later
            }
        )

    async def create_child(
        self, agent_id: str, parent: SessionRecord | None, caller: Caller, label: str | None
    ) -> SessionRecord:
        """Create a fresh ``agent:<id>:subagent:<uuid>`` session (sessions_spawn)."""
        if self.config.agent(agent_id) is None:
            raise await self._refuse_agent(agent_id, agent_id, None, caller)
        return await self.creation.child(agent_id, parent, caller, label)

    async def create_context(self, agent_id: str, caller: Caller) -> SessionRecord:
        """Create a fresh ``agent:<id>:a2a:<uuid>`` session: an A2A message without a
        ``contextId`` starts a conversation on purpose (origin ``a2a``), for a caller that
        may reach the agent."""
        if self.config.agent(agent_id) is None:
            raise await self._refuse_agent(agent_id, agent_id, None, caller)
        if not self.visibility.may_reach(caller, agent_id):  # refused as the new key would be
            key = self.parse(a2a_context_key(agent_id, str(uuid.uuid4())))
            hidden_by = self.visibility.hidden_by(caller, agent_id)
            raise await self._not_found(key.text, key, caller, hidden_by.split(" ")[0], hidden_by)
        return await self.creation.context(agent_id, caller)

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
            raise await self._refuse_agent(key, agent_id, parsed, Caller(None, entry_point))
        record, created = await self.creation.for_origin(
            parsed, agent_id, origin, entry_point, label, decided_at
        )
        followed = await follow_aliases(self.store.find, record)  # a repaired key leads on
        return followed or record, created


def _refusal_attributes(error: SessionGateError) -> dict[str, Any]:
    """What a refusal's span records: the decision as the audit names it, and the rule."""
    details = error.details
    if isinstance(error, InvalidSessionKeyError | AgentNotFoundError):
        decision = Decision.INVALID
    elif isinstance(error, SessionDeletedError):
        decision = Decision.DELETED
    elif isinstance(error, SessionNotFoundError) and details.get("policy"):
        decision = Decision.REJECTED
    else:
        decision = Decision.NOT_FOUND
    return {
        "canonical_key": details.get("canonicalKey"),
        "decision": str(decision),
        "rule": details.get("policy") or error.code,
        "error_code": error.code,
    }
