"""Lints: keys that parse but cannot be reached under the current configuration."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from sessiongate.config import SessionGateConfig
from sessiongate.keys import SessionKey, SessionKind, direct_key_for

__all__ = ["KeyLint", "agent_hint", "closest_agents", "lint_session_key"]

MAX_AGENT_SUGGESTIONS = 3
SCAN_AGENTS_UP_TO = 200  # beyond, comparing with every id costs milliseconds per refusal


@dataclass(frozen=True, slots=True)
class KeyLint:
    """Why a key cannot be right, and the key that probably was meant."""

    code: str
    message: str
    suggestion: str | None = None


def _unknown_agent(key: SessionKey, config: SessionGateConfig) -> KeyLint | None:
    if key.agent_id is None or config.agent(key.agent_id) is not None:
        return None
    return KeyLint(
        "UNKNOWN_AGENT",
        f"agent {key.agent_id!r} is not configured; {agent_hint(config, key.agent_id)}",
    )


def closest_agents(config: SessionGateConfig, agent_id: str) -> list[str]:
    """The few configured agent ids that look like `agent_id` (never the whole list)."""
    ids = config.agent_ids
    if len(ids) > SCAN_AGENTS_UP_TO:
        ids = _index_of(config).near(agent_id)
    return difflib.get_close_matches(agent_id, ids, n=MAX_AGENT_SUGGESTIONS, cutoff=0.6)


def _one_deletion(text: str) -> set[str]:
    return {text, *(text[:i] + text[i + 1 :] for i in range(len(text)))}


class _AgentIdIndex:
    """Agent ids by every one-character deletion of them: the ids within one edit (or one
    swap) of a typo are found in a few lookups, however many agents there are."""

    def __init__(self, ids: list[str]) -> None:
        self._by_variant: dict[str, list[str]] = {}
        for agent_id in ids:
            for variant in _one_deletion(agent_id):
                self._by_variant.setdefault(variant, []).append(agent_id)

    def near(self, wanted: str) -> list[str]:
        found = (self._by_variant.get(variant, ()) for variant in _one_deletion(wanted))
        return list(dict.fromkeys(agent_id for ids in found for agent_id in ids))


_INDEXES: dict[int, tuple[SessionGateConfig, _AgentIdIndex]] = {}


def _index_of(config: SessionGateConfig) -> _AgentIdIndex:
    """The index of this config's agent ids, built on first use (a process has one config,
    tests a few: the last four are kept)."""
    cached = _INDEXES.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    if len(_INDEXES) >= 4:
        _INDEXES.clear()
    index = _AgentIdIndex(config.agent_ids)
    _INDEXES[id(config)] = (config, index)
    return index


def agent_hint(config: SessionGateConfig, agent_id: str) -> str:
    """``did you mean atlas?`` — or how many agents there are, when none is close."""
    close = closest_agents(config, agent_id)
    if close:
        return f"did you mean {' or '.join(close)}?"
    count = len(config.agent_ids)
    if count <= MAX_AGENT_SUGGESTIONS:
        return f"agents.list has {', '.join(config.agent_ids)}"
    return f"none of the {count} agents in agents.list is close"


def _dm_scope_mismatch(key: SessionKey, config: SessionGateConfig) -> KeyLint | None:
    scope = config.session.dm_scope
    if key.kind is not SessionKind.DIRECT or key.dm_scope is scope or key.agent_id is None:
        return None
    assert key.peer is not None
    canonical = direct_key_for(key.agent_id, scope, key.peer, key.channel or "", key.account)
    if canonical == key.text:
        return None
    where = "direct messages live in" if scope.value == "main" else "this peer's messages live in"
    return KeyLint(
        "DM_SCOPE_MISMATCH",
        f"{key.agent_id} uses session.dmScope={scope.value}: {where} {canonical}",
        canonical,
    )


def lint_session_key(key: SessionKey, config: SessionGateConfig) -> list[KeyLint]:
    """Every lint that applies to `key` under `config` (empty when the key is reachable)."""
    found = (check(key, config) for check in (_unknown_agent, _dm_scope_mismatch))
    return [lint for lint in found if lint is not None]
