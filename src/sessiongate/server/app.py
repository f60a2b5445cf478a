"""The starlette application and the uvicorn server that hosts it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from sessiongate.config import SessionGateConfig
from sessiongate.gateway import Gateway
from sessiongate.server.a2a_mount import A2A_PATHS, LazyA2AEndpoint
from sessiongate.server.access_log import AccessLogMiddleware
from sessiongate.server.failed_auth import FailedAuthLimiter
from sessiongate.server.hot_routes import HotRoutes
from sessiongate.server.http import http_routes
from sessiongate.server.limits import ConnectionGuard, RateLimiter, guarded_protocols
from sessiongate.server.mcp_mount import LazyMcpEndpoint
from sessiongate.server.openclaw_ws import openclaw_websocket_endpoint
from sessiongate.server.ui import ui_routes
from sessiongate.server.ws import websocket_endpoint
from sessiongate.tracing import configure_tracing, enabled, shutdown_tracing, tracer_provider

__all__ = ["RunningGateway", "create_app", "run_gateway", "serve_forever"]

log = structlog.get_logger("sessiongate.server")

SHUTDOWN_GRACE_SECONDS = 10.0


class _GatewayApp(Starlette):
    """Starlette without its own error layers: what a route raises reaches the one
    catch-all of each surface (HTTP: `AccessLogMiddleware`; WebSocket, MCP and the page
    keep theirs), never a second handler in between. The per-message routes are answered
    in front of the router (`HotRoutes`), inside the middleware."""

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = HotRoutes(self.state, self.router, self.router.routes)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(config: SessionGateConfig, token: str, gateway: Gateway | None = None) -> Starlette:
    """The gateway as an ASGI app; the lifespan opens the `Gateway` (unless given one) and
    closes it on shutdown."""
    mcp = LazyMcpEndpoint()
    a2a = LazyA2AEndpoint()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened = gateway or await Gateway.open(config)
        app.state.gateway = opened
        app.state.connection_guard.metrics = opened.metrics
        app.state.failed_auth.metrics = opened.metrics
        app.state.failed_auth.audit = opened.audit
        try:
            async with mcp.serving(opened):
                yield
        finally:
            app.state.failed_auth.flush()  # the last counts, before the audit is flushed
            await opened.close(SHUTDOWN_GRACE_SECONDS)
            await asyncio.to_thread(shutdown_tracing)  # the last spans, to the collector

    configure_tracing(config)
    app = _GatewayApp(
        routes=[
            *http_routes(),
            WebSocketRoute("/ws", websocket_endpoint),
            WebSocketRoute("/", openclaw_websocket_endpoint),  # OpenClaw's CLI connects here
            Route("/mcp", mcp),
            *(Route(path, a2a) for path in A2A_PATHS),  # the A2A surface, if installed
            *ui_routes(),  # the control page; a browser's GET / goes there
        ],
        lifespan=lifespan,
        middleware=[*tracing_middleware(), Middleware(AccessLogMiddleware)],
    )
    app.state.token = token
    app.state.connection_guard = ConnectionGuard(config.gateway.limits)
    app.state.rate_limiter = RateLimiter(config.gateway.limits)
    app.state.failed_auth = FailedAuthLimiter(config.gateway.limits)
    return app


def tracing_middleware() -> list[Middleware]:
    """OpenTelemetry's ASGI middleware, outermost (so the access log sees its trace), when
    tracing is on: one trace per HTTP request, a W3C ``traceparent`` continued."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    provider = tracer_provider()
    return [
        Middleware(
            OpenTelemetryMiddleware, tracer_provider=provider, exclude_spans=["receive", "send"]
        )
    ]


def _uvicorn_config(app: Starlette, config: SessionGateConfig, port: int | None) -> uvicorn.Config:
    limits = config.gateway.limits
    http_protocol, ws_protocol = guarded_protocols(app.state.connection_guard)
    return uvicorn.Config(
        app,
        host=config.gateway.host,
        port=config.gateway.port if port is None else port,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the root logger: `logs` renders them
        lifespan="on",
        http=http_protocol,
        ws=ws_protocol,
        ws_max_size=4 * config.gateway.max_body_bytes,
        ws_per_message_deflate=False,  # small JSON frames: compression costs more than it saves
        ws_ping_interval=limits.ping_interval_seconds,
        ws_ping_timeout=limits.ping_timeout_seconds,
        timeout_keep_alive=limits.keep_alive_timeout_seconds,  # type: ignore[arg-type]
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_SECONDS),
    )


class _ForegroundServer(uvicorn.Server):
    """Stops gracefully on SIGINT/SIGTERM and then exits normally (status 0).

    `on_ready` gets the bound URL once the socket listens (and never if it cannot).
    """

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None]) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            _freeze_startup_heap()
            self.on_ready(_bound_url(self))

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def _freeze_startup_heap() -> None:
    """Keep what start-up built (modules, config, the app: ~70,000 objects) out of the
    collector's full passes. Profile: a full collection walked all of them every few
    thousand requests, ~40 ms each, ~20 us per fire-and-forget send on average."""
    gc.collect()
    gc.freeze()


def _bound_url(server: uvicorn.Server) -> str:
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    return f"http://{host}:{port}"


def _run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed (uvicorn[standard] on Linux/macOS), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def serve_forever(
    config: SessionGateConfig,
    token: str,
    port: int | None = None,
    on_ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Serve until SIGINT/SIGTERM; in-flight runs finish or are recorded as interrupted.

    The store is opened before the server starts listening, so a store that cannot
    be opened is a `SessionGateError` for the caller, not a failed startup. `on_ready`
    gets the bound URL once the port listens.
    """
    _run_event_loop(_serve(config, token, port, on_ready))


async def _serve(
    config: SessionGateConfig, token: str, port: int | None, on_ready: Callable[[str], None]
) -> None:
    gateway = await Gateway.open(config)
    app = create_app(config, token, gateway)
    await _ForegroundServer(_uvicorn_config(app, config, port), on_ready).serve()


class _EmbeddedServer(uvicorn.Server):
    """A server that leaves the host process's signal handlers alone."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


@dataclass(frozen=True, slots=True)
class RunningGateway:
    """A gateway served in this process (tests, the demo, benchmarks)."""

    url: str
    token: str
    gateway: Gateway

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws"


@contextlib.asynccontextmanager
async def run_gateway(
    config: SessionGateConfig, token: str, port: int = 0
) -> AsyncIterator[RunningGateway]:
    """Serve `config` on a loopback port (0: a free one) for the duration of the block."""
    app = create_app(config, token)
    server = _EmbeddedServer(_uvicorn_config(app, config, port))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                raise RuntimeError(f"the gateway did not start: {task.exception()!r}")
            await asyncio.sleep(0.01)
        yield RunningGateway(_bound_url(server), token, app.state.gateway)
    finally:
        server.should_exit = True
        await task
