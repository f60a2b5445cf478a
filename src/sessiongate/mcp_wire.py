"""What both ends of MCP share: the caller header, and how a result or a refusal looks to a model.

The gateway's ``/mcp`` (`sessiongate.server.mcp`) and the stdio bridge
(`sessiongate.mcp_bridge`) both build tool results here, so the bridge needs
nothing from the server's modules. Needs the ``mcp`` extra (`mcp_types`).
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

from sessiongate.errors import SessionGateError

__all__ = ["SESSION_HEADER", "compact_json", "tool_error", "tool_result"]

SESSION_HEADER = "x-session-key"


def compact_json(data: Any) -> str:
    """`data` as compact JSON text, non-ASCII kept as it is."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


def tool_result(result: dict[str, Any]) -> types.CallToolResult:
    """A tool's result: structured, and the same JSON as text for clients that read only text."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=compact_json(result))],
        structured_content=result,
    )


def tool_error(error: SessionGateError) -> types.CallToolResult:
    """A refusal as an MCP tool error: one readable line, then the wire form (also structured)."""
    wire = error.to_wire()
    line = f"{error.code}: {error.message.rstrip('.')}."
    suggestions = error.details.get("suggestions")
    if suggestions:
        line += f" Did you mean {', '.join(suggestions)}?"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{line}\n{compact_json(wire)}")],
        structured_content=wire,
        is_error=True,
    )
