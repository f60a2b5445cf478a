"""MCP with the SDK's own client: streamable HTTP at /mcp, and stdio via `sessiongate mcp`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from sessiongate.config import SessionGateConfig
from sessiongate.mcp_bridge import gateway_client
from sessiongate.server.mcp import transcript_uri
from sessiongate.tools import TOOLS
from tests.helpers import INCIDENT_KEY

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

CALLER = "agent:peggy:main"
ATLAS = "agent:atlas:main"


def strict(config_factory: ConfigFactory, **overrides: Any) -> SessionGateConfig:
    return config_factory(gateway__sessions={"createOnMiss": False}, **overrides)


def stdio_params(gw: Any, *args: str, token: str | None = None) -> StdioServerParameters:
    env = {**os.environ, "SESSIONGATE_TOKEN": gw.token if token is None else token}
    command = ["-m", "sessiongate", "mcp", "--url", gw.url, *args]
    return StdioServerParameters(command=sys.executable, args=command, env=env)


@contextlib.asynccontextmanager
async def stdio_client(gw: Any, *args: str) -> AsyncIterator[Client]:
    """`sessiongate mcp` as a subprocess; fails the test if it writes anything but protocol."""
    stray: list[Exception] = []

    async def watch(message: Any) -> None:
        if isinstance(message, Exception):
            stray.append(message)

    async with Client(stdio_params(gw, *args), message_handler=watch) as client:
        yield client
    assert stray == [], f"sessiongate mcp wrote something other than MCP to stdout: {stray}"


def transports(gw: Any, mode: str) -> dict[str, contextlib.AbstractAsyncContextManager[Client]]:
    """The SDK client over HTTP (`mode`: "auto" is the 2026-07-28 protocol, "legacy" the
    initialize handshake) or over stdio through `sessiongate mcp`."""
    return {
        "http": gateway_client(gw.url, gw.token, CALLER, mode=mode),
        "stdio": stdio_client(gw, "--session-key", CALLER),
    }


async def check_tools_and_send(client: Client, gw: Any) -> None:
    listed = (await client.list_tools()).tools
    allowed = gw.gateway.config.gateway.tools.allow  # the lifecycle tools are off by default
    assert [t.name for t in listed] == [name for name in TOOLS if name in allowed]
    assert "sessions_delete" not in [t.name for t in listed]
    for tool in listed:  # the schemas are the tools' own argument models
        assert tool.input_schema == TOOLS[tool.name].json_schema()
    result = await client.call_tool("sessions_send", {"sessionKey": ATLAS, "message": "hi"})
    assert result.is_error is not True
    assert result.structured_content is not None
    assert result.structured_content["reply"] == "echo: hi"
    assert result.structured_content["sessionKey"] == "agent:atlas:main"
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    history = await gw.gateway.store.history("agent:atlas:main")
    assert history[0].meta == {"caller": CALLER, "entryPoint": "mcp"}


async def check_refusal(client: Client, gw: Any) -> None:
    before = await gw.gateway.store.count_sessions()
    result = await client.call_tool("sessions_send", {"sessionKey": INCIDENT_KEY, "message": "hi"})
    assert result.is_error is True
    wire = result.structured_content
    assert wire is not None and wire["ok"] is False
    error = wire["error"]
    assert error["code"] == "SESSION_NOT_FOUND"
    assert error["details"]["requestedKey"] == INCIDENT_KEY
    assert error["details"]["canonicalKey"] == INCIDENT_KEY
    assert "agent:atlas:main" in error["details"]["suggestions"]
    assert "dmScope=main" in error["details"]["lint"]
    assert error["details"]["policy"] == "gateway.sessions.createOnMiss=false"
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("SESSION_NOT_FOUND: ") and "Did you mean agent:atlas:main?" in text
    assert await gw.gateway.store.count_sessions() == before == 2


async def check_transcript(client: Client) -> None:
    await client.call_tool("sessions_send", {"sessionKey": ATLAS, "message": "read me"})
    templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["sessiongate://sessions/{key}"]
    listed = {str(r.uri) for r in (await client.list_resources()).resources}
    assert transcript_uri("agent:atlas:main") in listed
    read = await client.read_resource(transcript_uri("agent:atlas:main"))
    transcript = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert transcript["sessionKey"] == "agent:atlas:main"
    assert [m["content"] for m in transcript["messages"]][-2:] == ["read me", "echo: read me"]


@pytest.mark.parametrize(
    ("transport", "mode"),
    [("http", "auto"), ("http", "legacy"), ("stdio", "auto")],
    ids=["http-2026", "http-handshake", "stdio"],
)
async def test_tools_send_refusal_and_transcript(
    serve: Serve, config_factory: ConfigFactory, transport: str, mode: str
) -> None:
    async with serve(strict(config_factory)) as gw, transports(gw, mode)[transport] as client:
        await check_tools_and_send(client, gw)
        await check_refusal(client, gw)
        await check_transcript(client)


async def test_no_token_is_401_and_a_wrong_one_too(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        for headers in ({}, {"authorization": "Bearer wrong"}):
            response = await http.post("/mcp", json=request, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "UNAUTHORIZED"
        with pytest.raises(ExceptionGroup) as refused:  # how the SDK client reports the 401
            async with gateway_client(gw.url, None) as client:
                await client.list_tools()
        assert refused.value.subgroup(MCPError) is not None


async def test_a_body_that_is_not_json_is_refused_in_the_wire_form(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        headers = {"authorization": f"Bearer {gw.token}", "content-type": "text/plain",
                   "accept": "application/json, text/event-stream"}  # fmt: skip
        response = await http.post("/mcp", content=b"{}", headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_stdio_without_a_gateway_exits_1_and_keeps_stdout_clean() -> None:
    command = [sys.executable, "-m", "sessiongate", "mcp", "--url", "http://127.0.0.1:9"]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "GATEWAY_UNREACHABLE" in done.stderr


@pytest.mark.parametrize(
    ("token", "args", "code"),
    [("wrong", [], "UNAUTHORIZED"), (None, ["--session-key", INCIDENT_KEY], "SESSION_NOT_FOUND")],
)
async def test_stdio_refuses_to_start_with_one_line_on_stderr(
    serve: Serve, config_factory: ConfigFactory, token: str | None, args: list[str], code: str
) -> None:
    async with serve(config_factory()) as gw:
        params = stdio_params(gw, *args, token=token)
        process = await asyncio.create_subprocess_exec(
            params.command, *params.args, env=params.env, stdin=DEVNULL, stdout=PIPE, stderr=PIPE
        )
        stdout, stderr = await process.communicate()
        assert await gw.gateway.store.count_sessions() == 2
    assert (process.returncode, stdout) == (1, b"")
    assert stderr.decode().startswith(f"error [{code}]")


async def test_caller_header_sets_visibility_for_tools_and_resources(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = strict(config_factory, tools={"sessions": {"visibility": "self"}})
    async with serve(config) as gw, gateway_client(gw.url, gw.token, CALLER) as client:
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        assert listed == [transcript_uri(CALLER)]
        with pytest.raises(MCPError) as refused:
            await client.read_resource(transcript_uri("agent:atlas:main"))
        assert refused.value.data["error"]["code"] == "SESSION_NOT_FOUND"
        result = await client.call_tool("sessions_history", {"sessionKey": "agent:atlas:main"})
        assert result.is_error is True
        assert result.structured_content is not None
        assert result.structured_content["error"]["details"]["suggestions"] == []


async def test_unknown_caller_session_is_refused_not_created(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, gateway_client(gw.url, gw.token, INCIDENT_KEY) as c:
        result = await c.call_tool("sessions_list", {})
        assert result.is_error is True
        assert result.structured_content is not None
        assert result.structured_content["error"]["code"] == "SESSION_NOT_FOUND"
        assert await gw.gateway.store.count_sessions() == 2


async def test_bad_calls_are_structured_tool_errors(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__tools={"allow": ["sessions_send", "sessions_list"]})
    calls = {
        "INVALID_REQUEST": [("sessions_send", {"message": "no key"})],
        "TOOL_NOT_FOUND": [("sessions_nope", {})],
        "FORBIDDEN": [("sessions_spawn", {"agentId": "atlas", "task": "t"})],
    }
    async with serve(config) as gw, gateway_client(gw.url, gw.token) as client:
        assert [t.name for t in (await client.list_tools()).tools] == config.gateway.tools.allow
        for code, attempts in calls.items():
            for name, args in attempts:
                result = await client.call_tool(name, args)
                assert result.is_error is True, (name, args)
                assert result.structured_content is not None
                assert result.structured_content["error"]["code"] == code, result
        with pytest.raises(MCPError) as refused:
            await client.read_resource("https://example.org/x")
        assert refused.value.data["error"]["code"] == "INVALID_REQUEST"
        assert await gw.gateway.store.count_sessions() == 2


async def test_mcp_shares_the_token_request_rate(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    limits = {"requestsPerSecondPerToken": 0.001, "requestBurstPerToken": 2}
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with serve(config_factory(gateway__limits=limits)) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            assert (await http.get("/v1/sessions")).status_code == 200
            assert (await http.get("/v1/sessions")).status_code == 200
            over = await http.post("/mcp", json=request)  # the bucket HTTP emptied
            assert over.status_code == 429
            assert over.json()["error"]["code"] == "TOO_MANY_REQUESTS"
