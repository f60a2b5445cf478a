"""``/mcp`` with the MCP SDK loaded on first use.

The SDK costs about 15 MiB and 0.3 s at start-up; a gateway nobody reaches over
MCP should not pay for it. The first request to ``/mcp`` starts a task that
imports `sessiongate.server.mcp` and runs its session manager until the app's
lifespan ends (the manager's task group is entered and left in that one task).
Without the ``mcp`` extra every request to ``/mcp`` is refused with one
`MissingExtraError` naming ``sessiongate[mcp]``; the rest of the gateway serves on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from sessiongate.errors import MissingExtraError
from sessiongate.extras import require_extra

if TYPE_CHECKING:
    from sessiongate.gateway import Gateway
    from sessiongate.server.mcp import McpEndpoint

__all__ = ["LazyMcpEndpoint"]


class LazyMcpEndpoint:
    """The ASGI app at ``/mcp``; `serving(gateway)` spans the app's lifespan."""

    def __init__(self) -> None:
        self._gateway: Gateway | None = None
        self._endpoint: McpEndpoint | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._missing: MissingExtraError | None = None

    @contextlib.asynccontextmanager
    async def serving(self, gateway: Gateway) -> AsyncIterator[None]:
        """Let requests start the MCP endpoint for `gateway`; stop it when the block ends."""
        self._gateway = gateway
        try:
            yield
        finally:
            self._stop.set()
            if self._task is not None:
                await self._task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sessiongate-mcp")
        await self._ready.wait()
        if self._missing is not None:
            raise self._missing
        if self._endpoint is None:
            raise RuntimeError("the MCP endpoint could not start; see the gateway log")
        await self._endpoint(scope, receive, send)

    async def _run(self) -> None:
        try:
            require_extra("mcp", "mcp", "the MCP endpoint /mcp")
            from sessiongate.server.mcp import McpEndpoint

            if self._gateway is None:
                raise RuntimeError("the MCP endpoint is not serving (outside the app's lifespan)")
            endpoint = McpEndpoint()
            async with endpoint.serving(self._gateway):
                self._endpoint = endpoint
                self._ready.set()
                await self._stop.wait()
        except MissingExtraError as exc:
            self._missing = exc
        finally:
            self._endpoint = None
            self._ready.set()
