"""The network surfaces: HTTP and WebSocket on one starlette app served by uvicorn."""

from __future__ import annotations

from sessiongate.server.app import RunningGateway, create_app, run_gateway, serve_forever

__all__ = ["RunningGateway", "create_app", "run_gateway", "serve_forever"]
