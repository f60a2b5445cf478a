"""The create-on-miss policy: what happens when an address names a missing session.

Precedence, most specific wins: the first matching ``gateway.sessions.rules[]``
entry (glob on the canonical key) > ``agents.list[].sessions.createOnMiss`` >
``gateway.sessions.createOnMiss`` (default ``true``). A call may pass
``createOnMiss: false`` to be stricter; it can never loosen the configured policy.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum

from sessiongate.config import SessionGateConfig

__all__ = ["CreateOnMissPolicy", "PolicyDecision", "decide_create_on_miss"]


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


_STRICTNESS = {CreateOnMissPolicy.ALLOW: 0, CreateOnMissPolicy.WARN: 1, CreateOnMissPolicy.DENY: 2}


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The policy in force for one key, and the setting that decided it."""

    mode: CreateOnMissPolicy
    rule: str

    @property
    def describe(self) -> str:
        """E.g. ``gateway.sessions.createOnMiss=false``."""
        return f"{self.rule}={self.mode.value}"


def _configured(config: SessionGateConfig, key: str, agent_id: str) -> PolicyDecision:
    for index, rule in enumerate(config.gateway.sessions.rules):
        if fnmatch.fnmatchcase(key, rule.match.lower()):
            mode = CreateOnMissPolicy.of(rule.create_on_miss)
            return PolicyDecision(mode, f"gateway.sessions.rules[{index}] ({rule.match})")
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
