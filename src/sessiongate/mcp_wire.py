"""What both ends of MCP share: the caller header, the SDK server they answer with, and how
a result or a refusal looks to a model.

The gateway's ``/mcp`` (`sessiongate.server.mcp`) and the stdio bridge
(`sessiongate.mcp_bridge`) both build their server and tool results here, so the
bridge needs nothing from the server's modules. Needs the ``mcp`` extra.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server

from sessiongate import __version__
from sessiongate.errors import SessionGateError

__all__ = ["SESSION_HEADER", "compact_json", "sdk_server", "tool_error", "tool_result"]

SESSION_HEADER = "x-session-key"


def sdk_server(handlers: Any, instructions: str | None, **options: Any) -> Server[Any]:
    """The SDK server both ends run: tools and transcripts, each request answered by the
    like-named method of `handlers` (list_tools, call_tool, list_resources,
    list_templates, read_resource)."""
    return Server(
        "sessiongate",
        version=__version__,
        instructions=instructions,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_resources=handlers.list_resources,
        on_list_resource_templates=handlers.list_templates,
        on_read_resource=handlers.read_resource,
        **options,
    )


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
