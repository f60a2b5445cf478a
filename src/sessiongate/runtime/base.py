"""What a runtime is: it turns one inbound message in a session into a reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sessiongate.store.base import MessageRecord, SessionRecord

if TYPE_CHECKING:
    from sessiongate.gateway import Gateway

__all__ = ["Emit", "Runtime", "Turn"]

Emit = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Turn:
    """One run: the session, the inbound message, and the transcript before it."""

    gateway: Gateway
    session: SessionRecord
    run_id: str
    message: str
    history: list[MessageRecord]


class Runtime(Protocol):
    name: str
    uses_history: bool  # whether `Turn.history` must be loaded before `run`

    async def run(self, turn: Turn, emit: Emit) -> str:
        """Produce the reply; `emit` streams partial text (run.delta events)."""
        ...
