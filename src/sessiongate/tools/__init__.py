"""Tools: each defined once and shared by HTTP, WebSocket, the CLI and LLM agents."""

from __future__ import annotations

from typing import Any

from sessiongate.errors import ToolNotFoundError
from sessiongate.tools.base import ToolContext, ToolSpec, forbidden_tool
from sessiongate.tools.lifecycle import LIFECYCLE_TOOLS
from sessiongate.tools.sessions import SESSION_TOOLS

__all__ = ["TOOLS", "ToolContext", "ToolSpec", "get_tool"]

TOOLS: dict[str, ToolSpec[Any]] = {spec.name: spec for spec in (*SESSION_TOOLS, *LIFECYCLE_TOOLS)}


def get_tool(name: Any, allowed: list[str] | None = None) -> ToolSpec[Any]:
    """The tool called `name`; ToolNotFoundError if unknown, ForbiddenError if not allowed."""
    if not isinstance(name, str) or name not in TOOLS:
        raise ToolNotFoundError(
            f"unknown tool {name!r:.60}: known tools are {', '.join(sorted(TOOLS))}",
            details={"tool": str(name)[:60], "known": sorted(TOOLS)},
        )
    if allowed is not None and name not in allowed:
        raise forbidden_tool(name, allowed)
    return TOOLS[name]
