"""What MCP costs: sessions_send to an existing session over MCP vs HTTP /tools/invoke.

Against `sessiongate serve` in its own process, sequential calls (each waits for
the echo reply), interleaved in rounds so machine noise hits every path alike:

- HTTP ``POST /tools/invoke`` (httpx, one keep-alive connection): the baseline;
- MCP over streamable HTTP with the SDK's client, protocol 2026-07-28 (one
  self-contained POST per call) and with the initialize handshake (2025-11-25);
- MCP over stdio through `sessiongate mcp` (the SDK's stdio client; the bridge
  then makes the streamable-HTTP call): the cost of the extra hop.

The timings include the client's own work (the SDK's validation on both ends),
since that is what an MCP client pays. Wall time on a shared machine is noisy,
so the gateway's own CPU time per call (from /proc) is printed beside it: the
cost sessiongate controls. Target: MCP / HTTP <= 2x.

Run: .venv/bin/python -m benchmarks.mcp_cost [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from benchmarks._common import (
    TOKEN,
    Costs,
    console,
    cost_table,
    free_port,
    gateway_command,
    interleave,
    process,
)
from benchmarks.gateway_e2e import HttpCaller
from sessiongate.mcp_bridge import gateway_client

KEY = "agent:atlas:main"
HTTP = "HTTP /tools/invoke sessions_send"
MCP_MODERN = "MCP streamable HTTP, 2026-07-28"
MCP_HANDSHAKE = "MCP streamable HTTP, handshake (2025-11-25)"
MCP_STDIO = "MCP stdio via `sessiongate mcp`"
TARGET = 2.0


class McpCaller:
    """Sequential sessions_send calls through one connected SDK client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def __call__(self, i: int) -> object:
        result = await self.client.call_tool(
            "sessions_send", {"sessionKey": KEY, "message": f"m{i}"}
        )
        assert not result.is_error and result.structured_content, result
        return result


def stdio_params(url: str) -> StdioServerParameters:
    args = ["-m", "sessiongate", "mcp", "--url", url]
    return StdioServerParameters(
        command=sys.executable, args=args, env={**os.environ, "SESSIONGATE_TOKEN": TOKEN}
    )


async def measure(count: int, rounds: int) -> Costs:
    with tempfile.TemporaryDirectory() as name:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(gateway_command(Path(name), port), url) as gateway:
            async with contextlib.AsyncExitStack() as stack:
                modern = await stack.enter_async_context(gateway_client(url, TOKEN, mode="auto"))
                handshake = await stack.enter_async_context(
                    gateway_client(url, TOKEN, mode="legacy")
                )
                stdio = await stack.enter_async_context(Client(stdio_params(url)))
                await stdio.list_tools()  # as MCP clients do before calling (the SDK needs it)
                callers: dict[str, Any] = {
                    HTTP: HttpCaller(url, KEY, 200),
                    MCP_MODERN: McpCaller(modern),
                    MCP_HANDSHAKE: McpCaller(handshake),
                    MCP_STDIO: McpCaller(stdio),
                }
                return await interleave(callers, gateway.pid, count, rounds)


def report(count: int, costs: Costs) -> dict[str, dict[str, float]]:
    """Print the table and the ratios to HTTP; return the figures."""
    title = f"sessions_send to an existing session, {count} sequential calls each, interleaved"
    figures = cost_table(title, costs, HTTP)
    for what, key in (("p50 latency", "p50_vs_http"), ("gateway CPU", "gateway_cpu_vs_http")):
        worst = max(figures[MCP_MODERN][key], figures[MCP_HANDSHAKE][key])
        verdict = "met" if worst <= TARGET else "NOT met"
        console.print(f"MCP streamable HTTP / HTTP, {what}: {worst:.2f}x at worst "
                      f"(target <= {TARGET:g}x: {verdict})")  # fmt: skip
    return figures


async def main(count: int, rounds: int) -> None:
    report(count, await measure(count, rounds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("SESSIONGATE_STATE_DIR", tempfile.mkdtemp(prefix="sg-bench-"))
    asyncio.run(main(args.count, args.rounds))
