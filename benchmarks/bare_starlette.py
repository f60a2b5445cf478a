"""The floor of the stack, measured beside the gateway: a bare starlette JSON endpoint and a
bare WebSocket echo, under the same uvicorn settings."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def echo(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"ok": True, "result": {"reply": f"echo: {body['args']['message']}"}})


async def ws_echo(websocket: WebSocket) -> None:
    """Answers each request frame with one response frame, like the gateway's protocol."""
    await websocket.accept()
    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            reply = {"type": "res", "id": frame["id"], "ok": True, "payload": frame["params"]}
            await websocket.send_text(json.dumps(reply))
    except WebSocketDisconnect:
        return


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/tools/invoke", echo, methods=["POST"]),
        Route("/healthz", healthz),
        WebSocketRoute("/ws", ws_echo),
    ]
)
