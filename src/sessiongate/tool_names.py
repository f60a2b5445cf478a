"""The names of the gateway's tools, importable without the tools themselves.

The registry (`sessiongate.tools`) is keyed by these names, and the config checks
`gateway.tools.allow` against them: the config stays cheap to import, and a
test holds the two to the same set.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ToolName"]


class ToolName(StrEnum):
    SEND = "sessions_send"
    SPAWN = "sessions_spawn"
    LIST = "sessions_list"
    HISTORY = "sessions_history"
