"""What a refusal suggests instead: visible sessions whose keys look like a slip of the
requested one (and the session a lint says the key meant).

Suggestions are drawn only from sessions the caller may see (no existence leak), from
each agent's newest active sessions, re-read every few seconds so a burst of refusals
costs one query, not one per refusal.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sessiongate.config import SessionGateConfig
from sessiongate.keys import SessionKey, agent_key_prefix, agent_of_key, key_segments
from sessiongate.lints import KeyLint, closest_agents
from sessiongate.resolution.aliases import follow_aliases
from sessiongate.resolution.caller import Caller
from sessiongate.resolution.known import KnownSessions
from sessiongate.resolution.visibility import Visibility
from sessiongate.store.base import SessionLookup, SessionRecord, SessionStatus

__all__ = ["MAX_SUGGESTIONS", "Suggestions", "closest_keys"]

MAX_SUGGESTIONS = 3
SUGGESTION_POOL = 100
SUGGESTION_CACHE_SECONDS = 2.0
MATCHES_MEMO_SIZE = 1024  # keys whose close keys are remembered per snapshot (then cleared)


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


@dataclass(frozen=True, slots=True)
class _Matches:
    records: list[SessionRecord]  # the snapshot matched against (by identity)
    by_key: dict[str, SessionRecord]
    close: list[str]


@dataclass(eq=False)
class Suggestions:
    """The suggestions of each kind of refusal, for one caller at a time."""

    config: SessionGateConfig
    store: SessionLookup
    visibility: Visibility
    known: KnownSessions
    parse: Callable[[str], SessionKey]
    _recent: dict[str, tuple[float, list[SessionRecord]]] = field(default_factory=dict, init=False)
    # a refused key's close keys among one snapshot of its agent's sessions: a key
    # refused again and again (a misrouted bot) is matched once per snapshot
    _matches: dict[tuple[str, str], _Matches] = field(default_factory=dict, init=False)

    def sessions_changed(self, agent_id: str) -> None:
        """A session of `agent_id` was just created: read its newest sessions afresh."""
        self._recent.pop(agent_id, None)

    async def for_missing(
        self, key: SessionKey, agent_id: str, caller: Caller, lints: list[KeyLint]
    ) -> list[str]:
        """For a key that is missing or hidden: the lint's suggestion, then close keys."""
        recent, close = self._close_keys(key.text, agent_id, await self._recent_sessions(agent_id))
        candidates = [lint.suggestion for lint in lints if lint.suggestion]
        candidates += close
        suggestions: list[str] = []
        for candidate in candidates:
            if candidate in suggestions or candidate == key.text:
                continue
            record = recent.get(candidate) or self.known.get(candidate)
            if record is None and (record := await self.store.find(candidate)) is not None:
                self.known.remember(record)
            if record and await self.visibility.may_see(caller, candidate, agent_id, record):
                suggestions.append(candidate)
        return suggestions[:MAX_SUGGESTIONS]

    def _close_keys(
        self, wanted: str, agent_id: str, records: list[SessionRecord]
    ) -> tuple[dict[str, SessionRecord], list[str]]:
        """The snapshot's sessions by key and `closest_keys` of `wanted` among them,
        remembered until the snapshot is read afresh."""
        memo = self._matches.get((agent_id, wanted))
        if memo is None or memo.records is not records:
            recent = {s.key: s for s in records}
            memo = _Matches(records, recent, closest_keys(wanted, list(recent)))
            if len(self._matches) >= MATCHES_MEMO_SIZE:
                self._matches.clear()
            self._matches[agent_id, wanted] = memo
        return memo.by_key, memo.close

    async def for_invalid(self, reference: Any, caller: Caller) -> list[str]:
        """For a key that does not parse (a typo in a segment): visible keys of its agent."""
        if not isinstance(reference, str):
            return []
        text = reference.strip().lower()
        agent_id = agent_of_key(text)
        if agent_id is None or self.config.agent(agent_id) is None:
            return []
        recent = await self._recent_sessions(agent_id)
        visible = [s.key for s in recent if await self._may_see(caller, s)]
        return closest_keys(text, visible)

    async def for_unknown_agent(self, agent_id: str, key: SessionKey, caller: Caller) -> list[str]:
        """The requested key with its agent id corrected (the rest kept), for each configured
        agent close to `agent_id` whose session there `caller` may see."""
        prefix = agent_key_prefix(agent_id)
        rest = key.text.removeprefix(prefix) if key.text.startswith(prefix) else "main"
        suggestions = []
        for close in closest_agents(self.config, agent_id):
            candidate = self.parse(agent_key_prefix(close) + rest).text
            record = await follow_aliases(self.store.find, await self.store.find(candidate))
            if await self.visibility.may_see(caller, candidate, close, record):
                suggestions.append(record.key if record else candidate)
        return list(dict.fromkeys(suggestions))

    def close_agents(self, agent_id: str, caller: Caller) -> list[str]:
        """Configured agents close to `agent_id` that `caller` may reach (a spawn's agentId)."""
        close = closest_agents(self.config, agent_id)
        return [a for a in close if self.visibility.may_reach(caller, a)]

    async def _may_see(self, caller: Caller, record: SessionRecord) -> bool:
        return await self.visibility.may_see(caller, record.key, record.agent_id, record)

    async def _recent_sessions(self, agent_id: str) -> list[SessionRecord]:
        """The agent's newest active sessions (cached for a few seconds)."""
        cached = self._recent.get(agent_id)
        if cached is not None and time.monotonic() - cached[0] < SUGGESTION_CACHE_SECONDS:
            return cached[1]
        page = await self.store.list_sessions(agent_id=agent_id, limit=SUGGESTION_POOL)
        records = [s for s in page.sessions if s.status == SessionStatus.ACTIVE]
        self._recent[agent_id] = (time.monotonic(), records)
        return records
