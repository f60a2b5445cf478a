"""The create-on-miss policy: what happens when an address names a missing session.

Precedence, most specific wins: the first matching ``gateway.sessions.rules[]``
entry (glob on the canonical key) > ``agents.list[].sessions.createOnMiss`` >
``gateway.sessions.createOnMiss`` (default ``true``). A call may pass
``createOnMiss: false`` to be stricter; it can never loosen the configured policy.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sessiongate.config import SessionGateConfig, SessionRule
from sessiongate.keys import HOOK_KEY_PREFIX, agent_key_prefix, main_key

__all__ = [
    "AgentPolicy",
    "CreateOnMissPolicy",
    "PolicyDecision",
    "decide_create_on_miss",
    "effective_for",
    "effective_policies",
]


class CreateOnMissPolicy(StrEnum):
    ALLOW = "true"
    WARN = "warn"
    DENY = "false"

    @classmethod
    def of(cls, value: bool | str) -> CreateOnMissPolicy:
        """The policy a config value (true | false | "warn") stands for."""
        if value == "warn":
            return cls.WARN
        return cls.ALLOW if value is True else cls.DENY

    @property
    def config_value(self) -> bool | str:
        """The config value (true | false | "warn") this policy stands for."""
        return "warn" if self is CreateOnMissPolicy.WARN else self is CreateOnMissPolicy.ALLOW


_STRICTNESS = {CreateOnMissPolicy.ALLOW: 0, CreateOnMissPolicy.WARN: 1, CreateOnMissPolicy.DENY: 2}


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The policy in force for one key, and the setting that decided it."""

    mode: CreateOnMissPolicy
    rule: str
    match: str | None = None  # the glob, when a gateway.sessions.rules[] entry decided

    def to_wire(self) -> dict[str, Any]:
        wire = {"createOnMiss": self.mode.config_value, "decidedBy": self.rule}
        return wire if self.match is None else {**wire, "match": self.match}

    @property
    def describe(self) -> str:
        """E.g. ``gateway.sessions.createOnMiss=false``."""
        return f"{self.rule}={self.mode.value}"


def _rule_decision(index: int, rule: SessionRule) -> PolicyDecision:
    mode = CreateOnMissPolicy.of(rule.create_on_miss)
    return PolicyDecision(mode, f"gateway.sessions.rules[{index}] ({rule.match})", rule.match)


def _configured(config: SessionGateConfig, key: str, agent_id: str) -> PolicyDecision:
    for index, rule in enumerate(config.gateway.sessions.rules):
        if fnmatch.fnmatchcase(key, rule.match.lower()):
            return _rule_decision(index, rule)
    return _agent_setting(config, agent_id)


def _agent_setting(config: SessionGateConfig, agent_id: str) -> PolicyDecision:
    """The policy for an agent's keys that no rule matches."""
    agent = config.agent(agent_id)
    if agent is not None and agent.sessions.create_on_miss is not None:
        mode = CreateOnMissPolicy.of(agent.sessions.create_on_miss)
        position = config.agent_index(agent_id)
        return PolicyDecision(mode, f"agents.list[{position}].sessions.createOnMiss")
    mode = CreateOnMissPolicy.of(config.gateway.sessions.create_on_miss)
    return PolicyDecision(mode, "gateway.sessions.createOnMiss")


def decide_create_on_miss(
    config: SessionGateConfig, key: str, agent_id: str, requested: bool | None = None
) -> PolicyDecision:
    """The policy for a missing `key`; `requested` (a call's createOnMiss) may only tighten it."""
    configured = _configured(config, key, agent_id)
    if requested is False and _STRICTNESS[configured.mode] < _STRICTNESS[CreateOnMissPolicy.DENY]:
        return PolicyDecision(CreateOnMissPolicy.DENY, "call createOnMiss")
    return configured


@dataclass(frozen=True, slots=True)
class AgentPolicy:
    """What the resolver does with a missing key of one agent.

    A missing key is decided by the first of `rules` whose glob matches it, else by
    `otherwise`; `main` is that decision for the agent's main key.
    """

    agent_id: str
    main: PolicyDecision
    otherwise: PolicyDecision
    rules: tuple[PolicyDecision, ...]

    def to_wire(self) -> dict[str, Any]:
        rules = [rule.to_wire() for rule in self.rules]
        return {**self.main.to_wire(), "otherKeys": self.otherwise.to_wire(), "rules": rules}


def effective_for(config: SessionGateConfig, agent_id: str) -> AgentPolicy:
    """The create-on-miss policy of `agent_id` as the resolver applies it (status, banner, page)."""
    prefixes = [agent_key_prefix(agent_id)]
    if agent_id == config.default_agent.id:
        prefixes.append(HOOK_KEY_PREFIX)  # hook keys run on the default agent
    rules = tuple(
        _rule_decision(index, rule)
        for index, rule in enumerate(config.gateway.sessions.rules)
        if any(_may_match_prefixed(rule.match.lower(), prefix) for prefix in prefixes)
    )
    main = _configured(config, main_key(agent_id), agent_id)
    return AgentPolicy(agent_id, main, _agent_setting(config, agent_id), rules)


def effective_policies(config: SessionGateConfig) -> list[AgentPolicy]:
    """`effective_for` of every configured agent, in config order."""
    return [effective_for(config, agent_id) for agent_id in config.agent_ids]


_GLOB_PIECE = re.compile(r"\*|\?|\[!?\]?[^\]]*\]|.", re.DOTALL)


def _may_match_prefixed(pattern: str, prefix: str) -> bool:
    """Whether glob `pattern` matches some string that starts with `prefix` and goes on."""
    pieces = _GLOB_PIECE.findall(pattern)
    states = _after_stars(pieces, {0})
    for char in prefix:
        advanced: set[int] = set()
        for i in states:
            if i == len(pieces):
                continue
            if pieces[i] == "*":
                advanced.add(i)
            elif _piece_matches(pieces[i], char):
                advanced.add(i + 1)
        states = _after_stars(pieces, advanced)
    return any(i < len(pieces) for i in states)


def _after_stars(pieces: list[str], states: set[int]) -> set[int]:
    """`states` plus the positions reached by letting each `*` match nothing."""
    pending, reached = list(states), set(states)
    while pending:
        i = pending.pop()
        if i < len(pieces) and pieces[i] == "*" and i + 1 not in reached:
            reached.add(i + 1)
            pending.append(i + 1)
    return reached


def _piece_matches(piece: str, char: str) -> bool:
    if piece == "?":
        return True
    if len(piece) > 1:  # a [set]
        return fnmatch.fnmatchcase(char, piece)
    return piece == char
