"""An OpenAI-compatible chat endpoint that answers at once (no tool calls)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def chat(request: Request) -> JSONResponse:
    body = await request.json()
    text = body["messages"][-1]["content"]
    message = {"role": "assistant", "content": f"model: {text}"}
    return JSONResponse(
        {
            "id": "cmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        }
    )


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/healthz", healthz)]
)
