"""Who may see which session: ``tools.sessions.visibility`` and agent-to-agent.

An invisible session answers exactly like a missing one (the resolver's refusal);
`hidden_by` names the rule in words that are true whether the session exists or not.
An operator (no own session) sees everything.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable

from sessiongate.config import SessionGateConfig
from sessiongate.resolution.caller import Caller
from sessiongate.store.base import SessionRecord

__all__ = ["MAX_TREE_DEPTH", "Visibility"]

MAX_TREE_DEPTH = 32

Find = Callable[[str], Awaitable[SessionRecord | None]]


class Visibility:
    """Decides whether a caller may see a session (stored, or by its key when missing)."""

    def __init__(self, config: SessionGateConfig, find: Find) -> None:
        self.config = config
        self.find = find

    async def may_see(
        self, caller: Caller, key: str, agent_id: str, record: SessionRecord | None
    ) -> bool:
        """Whether `caller` may see the session under canonical `key` of `agent_id`
        (`record`: what is stored there, if anything)."""
        if caller.is_operator:
            return True
        if agent_id != caller.agent_id:
            return self.cross_agent_allowed(agent_id)
        visibility = self.config.tools.sessions.visibility
        target = record.key if record else key
        if visibility in ("agent", "all") or target == caller.session_key:
            return True
        if visibility == "self" or record is None:
            return False
        return await self._spawned_by(record, str(caller.session_key))

    def only_visible_agent(self, caller: Caller) -> str | None:
        """The one agent whose sessions `caller` may see; None for an operator or when
        agent-to-agent visibility may open other agents."""
        if caller.is_operator:
            return None
        a2a = self.config.tools.agent_to_agent
        if self.config.tools.sessions.visibility == "all" and a2a.enabled:
            return None
        return caller.agent_id

    def may_reach(self, caller: Caller, agent_id: str) -> bool:
        """Whether `caller` may see any session of `agent_id`."""
        return (
            caller.is_operator or agent_id == caller.agent_id or self.cross_agent_allowed(agent_id)
        )

    def cross_agent_allowed(self, agent_id: str) -> bool:
        a2a = self.config.tools.agent_to_agent
        if self.config.tools.sessions.visibility != "all" or not a2a.enabled:
            return False
        return any(fnmatch.fnmatchcase(agent_id, pattern) for pattern in a2a.allow)

    def hidden_by(self, caller: Caller, agent_id: str) -> str:
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
            current = await self.find(current.provenance.parent_key)
        return False
