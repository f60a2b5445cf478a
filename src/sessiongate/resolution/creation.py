"""Every way a session comes to exist, each recording its origin.

- start-up: each configured agent's main session (`startup_mains`; a force-deleted
  main stays deleted);
- a spawn: a fresh ``agent:<id>:subagent:<uuid>`` child (`child`);
- an A2A message without a ``contextId``: a fresh ``agent:<id>:a2a:<uuid>`` (`context`);
- a message's own origin: an inbound channel message, ``sessions create`` (`for_origin`);
- an address the create-on-miss policy let create (`on_miss`; the resolver decides).

Creation is an atomic ensure in the store: created once, even under concurrent callers
and several gateway processes, and never over a delete decided after the creation was
(`NewSession.decided_at`: SessionDeletedError). Whether a caller may create is decided
before this.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sessiongate.config import SessionGateConfig
from sessiongate.errors import SessionDeletedError
from sessiongate.keys import SessionKey, SessionKind, a2a_context_key, main_key, subagent_key
from sessiongate.metrics import GatewayMetrics
from sessiongate.resolution.caller import Caller
from sessiongate.resolution.visibility import MAX_TREE_DEPTH
from sessiongate.store.base import NewSession, Origin, Provenance, SessionLookup, SessionRecord

__all__ = ["SessionCreation"]

STARTUP_BATCH = 256
STARTUP_PAGE = 5000


@dataclass(eq=False)
class SessionCreation:
    """Creates sessions in the store; `created(agent_id)` hears of each new one."""

    config: SessionGateConfig
    store: SessionLookup
    metrics: GatewayMetrics
    created: Callable[[str], None]

    async def _ensure(self, new: NewSession) -> tuple[SessionRecord, bool]:
        record, created = await self.store.ensure(new)
        self.created(new.agent_id)
        if created:
            self.metrics.created(new.provenance.origin)
        return record, created

    async def startup_mains(self) -> int:
        """Create each configured agent's main session; return how many were new."""
        existing = await self._existing_mains()
        agents = [a.id for a in self.config.agents.entries if main_key(a.id) not in existing]
        created = 0
        for start in range(0, len(agents), STARTUP_BATCH):  # concurrent: the store groups them
            batch = agents[start : start + STARTUP_BATCH]
            created += sum(await asyncio.gather(*(self._create_main(a) for a in batch)))
        return created

    async def _existing_mains(self) -> set[str]:
        """Keys of the main sessions already stored (one listing instead of one call each)."""
        found: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self.store.list_sessions(
                kind=SessionKind.MAIN, limit=STARTUP_PAGE, cursor=cursor
            )
            found.update(s.key for s in page.sessions)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    async def _create_main(self, agent_id: str) -> bool:
        provenance = Provenance(Origin.STARTUP, "startup")
        new = NewSession(main_key(agent_id), agent_id, SessionKind.MAIN.value, provenance)
        try:
            return (await self._ensure(new))[1]
        except SessionDeletedError:  # a force-deleted main stays deleted (see sessions delete)
            return False

    async def on_miss(
        self, key: SessionKey, agent_id: str, caller: Caller, decided_at: float
    ) -> tuple[SessionRecord, bool]:
        """Create an addressed key the policy let create (False: a concurrent caller did)."""
        provenance = Provenance(Origin.ADDRESS, caller.entry_point, caller.session_key)
        kind = key.kind.value
        return await self._ensure(
            NewSession(key.text, agent_id, kind, provenance, None, decided_at)
        )

    async def child(
        self, agent_id: str, parent: SessionRecord | None, caller: Caller, label: str | None
    ) -> SessionRecord:
        """A fresh ``agent:<id>:subagent:<uuid>`` session under `parent` (sessions_spawn)."""
        key = subagent_key(agent_id, str(uuid.uuid4()))
        parent_key = parent.key if parent else None
        # nearest first, as deep as visibility reaches: a long chain costs no more storage
        chain = (parent.key, *parent.provenance.ancestors)[:MAX_TREE_DEPTH] if parent else ()
        provenance = Provenance(
            Origin.SPAWN, caller.entry_point, caller.session_key, parent_key, chain
        )
        new = NewSession(key, agent_id, SessionKind.SUBAGENT.value, provenance, label)
        return (await self._ensure(new))[0]

    async def context(self, agent_id: str, caller: Caller) -> SessionRecord:
        """A fresh ``agent:<id>:a2a:<uuid>`` session: a new A2A conversation (origin a2a)."""
        key = a2a_context_key(agent_id, str(uuid.uuid4()))
        provenance = Provenance(Origin.A2A, caller.entry_point, caller.session_key)
        return (await self._ensure(NewSession(key, agent_id, SessionKind.A2A.value, provenance)))[0]

    async def for_origin(
        self,
        key: SessionKey,
        agent_id: str,
        origin: Origin,
        entry_point: str,
        label: str | None,
        decided_at: float | None,
    ) -> tuple[SessionRecord, bool]:
        """A session whose key comes from a message's own origin (found if it exists; a
        deleted key only when `decided_at` is after the delete, never for None)."""
        provenance = Provenance(origin, entry_point)
        kind = key.kind.value
        new = NewSession(key.text, agent_id, kind, provenance, label, decided_at)
        return await self._ensure(new)
