"""A gateway served on its own event loop in a background thread.

For tests that drive it from blocking code — the sync client called from a thread
whose own loop is running, hypothesis properties — while the server keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from sessiongate.config import SessionGateConfig
from sessiongate.server.app import RunningGateway, run_gateway

T = TypeVar("T")


@dataclass
class ThreadedGateway:
    running: RunningGateway
    loop: asyncio.AbstractEventLoop

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the gateway's loop (e.g. a store read) and wait for it."""

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def session_keys(self) -> set[str]:
        async def keys() -> set[str]:
            page = await self.running.gateway.store.list_sessions(limit=1000)
            return {s.key for s in page.sessions}

        return self.call(keys)


@contextlib.contextmanager
def gateway_in_thread(config: SessionGateConfig) -> Iterator[ThreadedGateway]:
    """Serve `config` on a free loopback port from a thread for the duration of the block."""
    started = threading.Event()
    found: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        try:
            async with run_gateway(config, secrets.token_urlsafe(24)) as running:
                found["gateway"] = ThreadedGateway(running, asyncio.get_running_loop())
                found["stop"] = stop
                started.set()
                await stop.wait()
        except BaseException as exc:
            found["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    started.wait(timeout=60)
    if "gateway" not in found:
        raise RuntimeError(f"the gateway did not start: {found.get('error')!r}")
    gateway: ThreadedGateway = found["gateway"]
    try:
        yield gateway
    finally:
        gateway.loop.call_soon_threadsafe(found["stop"].set)
        thread.join(timeout=60)
