"""The echo runtime: deterministic replies, for tests, demos and benchmarks."""

from __future__ import annotations

from sessiongate.runtime.base import Emit, Turn

__all__ = ["EchoRuntime"]


class EchoRuntime:
    name = "echo"
    uses_history = False

    async def run(self, turn: Turn, emit: Emit) -> str:
        reply = self.answer_now(turn.message)
        await emit(reply)
        return reply

    def answer_now(self, message: str) -> str:
        """Echo answers every message at once (`AnswersAtOnce`): no I/O, no transcript."""
        return f"echo: {message}"

    async def close(self) -> None:
        return None
