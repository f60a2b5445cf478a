"""Who addresses a session: an operator, or an agent speaking from its own session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sessiongate.keys import agent_of_key

__all__ = ["Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who addresses: an operator (token, no session) or an agent speaking from its session."""

    session_key: str | None = None
    entry_point: str = "api"

    @property
    def is_operator(self) -> bool:
        return self.session_key is None

    @property
    def agent_id(self) -> str | None:
        if self.session_key is None:
            return None
        return agent_of_key(self.session_key)

    def to_wire(self) -> dict[str, Any]:
        return {"sessionKey": self.session_key, "entryPoint": self.entry_point}
