"""Every surface validates a send's arguments exactly once.

A surface parses its wire shape into the shared argument models once and calls the
gateway's typed operation; nothing dumps a model and validates it again. Counted by
wrapping the validators of every model that carries a send's arguments (the shared
`SendArgs` and the surfaces' own send-shaped models), over the real server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from sessiongate.config import SessionGateConfig
from sessiongate.mcp_bridge import gateway_client
from sessiongate.server import http as http_surface
from sessiongate.server import openclaw_wire, ws
from sessiongate.tools.args import SendArgs
from tests.helpers import connected, openclaw_client, openclaw_request, sign_in, ws_request

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

SEND_MODELS: tuple[type[BaseModel], ...] = (
    SendArgs,
    http_surface._typed_envelope("sessions_send"),  # /tools/invoke: envelope and arguments
    ws.AgentParams,
    openclaw_wire.AgentParams,
    openclaw_wire.ChatSendParams,
)


class CountingValidator:
    """Stands in for a model's validator: counts, then validates as the model would."""

    def __init__(self, inner: Any, counts: dict[str, int], name: str) -> None:
        self.inner = inner
        self.counts = counts
        self.name = name

    def validate_python(self, *args: Any, **kwargs: Any) -> Any:
        self.counts[self.name] = self.counts.get(self.name, 0) + 1
        return self.inner.validate_python(*args, **kwargs)

    def validate_json(self, *args: Any, **kwargs: Any) -> Any:
        self.counts[self.name] = self.counts.get(self.name, 0) + 1
        return self.inner.validate_json(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often each send-shaped model has validated something since the test began."""
    counts: dict[str, int] = {}
    for model in SEND_MODELS:
        name = f"{model.__module__}.{model.__qualname__}"
        wrapped = CountingValidator(model.__pydantic_validator__, counts, name)
        monkeypatch.setattr(model, "__pydantic_validator__", wrapped)
    return counts


@asynccontextmanager
async def counted(validations: dict[str, int]) -> AsyncIterator[None]:
    """The block sends once: exactly one validation of its arguments, by one model."""
    validations.clear()
    yield
    assert sum(validations.values()) == 1, validations


def http(gw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.url, headers={"authorization": f"Bearer {gw.token}"})


async def test_http_tools_invoke(
    serve: Serve, config_factory: ConfigFactory, validations: dict[str, int]
) -> None:
    async with serve(config_factory()) as gw, http(gw) as client:
        body = {"tool": "sessions_send", "args": {"sessionKey": "main", "message": "hi"}}
        async with counted(validations):
            response = await client.post("/tools/invoke", json=body)
        assert response.json()["result"]["reply"] == "echo: hi"


async def test_native_websocket_agent_and_tools_invoke(
    serve: Serve, config_factory: ConfigFactory, validations: dict[str, int]
) -> None:
    async with serve(config_factory()) as gw:
        socket = await connected(gw)
        async with counted(validations):
            answer = await ws_request(socket, 1, "agent", sessionKey="main", message="hi")
        assert answer["payload"]["reply"] == "echo: hi"
        args = {"sessionKey": "main", "message": "again"}
        async with counted(validations):
            answer = await ws_request(socket, 2, "tools.invoke", tool="sessions_send", args=args)
        assert answer["payload"]["reply"] == "echo: again"
        await socket.close()


async def test_openclaw_agent_and_chat_send(
    serve: Serve, config_factory: ConfigFactory, validations: dict[str, int]
) -> None:
    async with serve(config_factory()) as gw:
        socket = await openclaw_client(gw, ["operator.write"])
        async with counted(validations):
            answer = await openclaw_request(socket, "a", "agent", message="hi", idempotencyKey="k1")
        assert answer["ok"], answer
        async with counted(validations):
            answer = await openclaw_request(
                socket, "b", "chat.send", sessionKey="main", message="hi", idempotencyKey="k2"
            )
        assert answer["ok"], answer
        await socket.close()


async def test_mcp_sessions_send(
    serve: Serve, config_factory: ConfigFactory, validations: dict[str, int]
) -> None:
    async with serve(config_factory()) as gw, gateway_client(gw.url, gw.token) as client:
        args = {"sessionKey": "main", "message": "hi"}
        async with counted(validations):
            result = await client.call_tool("sessions_send", args)
        assert result.structured_content is not None
        assert result.structured_content["reply"] == "echo: hi"


async def test_control_page_send(
    serve: Serve, config_factory: ConfigFactory, validations: dict[str, int]
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as page:
        csrf = await sign_in(page, gw.token)
        form = {"sessionKey": "agent:atlas:main", "message": "hi", "csrf": csrf}
        async with counted(validations):
            sent = await page.post("/ui/send", data=form)
        assert 'data-status="ok"' in sent.text, sent.text[:2000]


async def test_reads_do_not_validate_a_send(
    serve: Serve, config_factory: ConfigFactory, validations: dict[str, int]
) -> None:
    """Reads validate their own models, never a send's."""
    async with serve(config_factory()) as gw, http(gw) as client:
        validations.clear()
        await client.get("/v1/sessions")
        await client.get("/v1/sessions/main/messages")
        await client.get("/v1/sessions/main")
        assert validations == {}, json.dumps(validations)
