"""Baseline for the end-to-end benchmark: a bare starlette JSON endpoint, nothing else."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def echo(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"ok": True, "result": {"reply": f"echo: {body['args']['message']}"}})


app = Starlette(routes=[Route("/tools/invoke", echo, methods=["POST"])])
