"""What a runtime is: it turns one inbound message in a session into a reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sessiongate.resolver import Caller
from sessiongate.store.base import MessageRecord, SessionRecord

__all__ = ["Emit", "InvokeTool", "Runtime", "Turn"]

Emit = Callable[[str], Awaitable[None]]
InvokeTool = Callable[[str, Any, Caller], Awaitable[dict[str, Any]]]
"""The gateway's one invoke path, as a runtime sees it: (tool, raw args, caller) → result."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One run: the session, the inbound message, the transcript before it, and the
    gateway's invoke path for the tools the runtime calls."""

    invoke_tool: InvokeTool
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

    async def close(self) -> None:
        """Release what the runtime holds (its own HTTP client), when the gateway closes."""
        ...
