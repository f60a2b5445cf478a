"""What a runtime is: it turns one inbound message in a session into a reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sessiongate.resolver import Caller
from sessiongate.store.base import MessageRecord, SessionRecord

__all__ = ["AnswersAtOnce", "Emit", "InvokeTool", "Runtime", "Turn", "answer_now"]

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


class AnswersAtOnce(Protocol):
    """A runtime that can answer some messages without I/O and without the transcript
    (echo): the run manager then stores the message, its run and the reply in one write
    and reports the run's events (one `run.delta`: the whole reply) without running it."""

    def answer_now(self, message: str) -> str | None:
        """The reply to `message`, computed now; None when the run must execute normally."""
        ...


def answer_now(runtime: Runtime, message: str) -> str | None:
    """`runtime`'s immediate reply to `message` if it has one (`AnswersAtOnce`), else None."""
    answer: Callable[[str], str | None] | None = getattr(runtime, "answer_now", None)
    return None if answer is None else answer(message)
