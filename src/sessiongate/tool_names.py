"""The names of the gateway's tools, importable without the tools themselves.

The registry (`sessiongate.tools`) is keyed by these names, and the config checks
`gateway.tools.allow` against them: the config stays cheap to import, and a
test holds the two to the same set.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DEFAULT_TOOLS", "ToolName"]


class ToolName(StrEnum):
    SEND = "sessions_send"
    SPAWN = "sessions_spawn"
    LIST = "sessions_list"
    HISTORY = "sessions_history"
    # lifecycle: offered to agents (LLM, MCP, /tools/invoke) only when gateway.tools.allow
    # names them; an operator (token, no session of its own) may always use them
    DELETE = "sessions_delete"
    RESET = "sessions_reset"
    ARCHIVE = "sessions_archive"
    UNARCHIVE = "sessions_unarchive"
    PATCH = "sessions_patch"


DEFAULT_TOOLS = (ToolName.SEND, ToolName.SPAWN, ToolName.LIST, ToolName.HISTORY)
"""gateway.tools.allow when it is not set: the lifecycle tools are off."""
