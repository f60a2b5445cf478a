"""What A2A costs: a message into an existing context over A2A vs a native HTTP send.

Against `sessiongate serve` in its own process, sequential calls (each waits for
the echo reply), interleaved in rounds so machine noise hits every path alike:

- HTTP ``POST /tools/invoke`` sessions_send (httpx, one keep-alive connection): the
  baseline;
- A2A ``SendMessage`` with the `a2a-sdk` client (JSON-RPC, protobuf on both ends),
  into one context issued by the first message;
- A2A ``SendMessage`` as plain JSON-RPC over httpx: the gateway's side alone,
  without the SDK client's own work;
- A2A ``SendStreamingMessage`` with the SDK client (SSE: task, working, reply).

The timings include the client's work, since that is what an A2A client pays; the
gateway's CPU per call (from /proc) is printed beside them: the cost sessiongate
controls. Target: A2A SendMessage / HTTP <= 2x.

Run: .venv/bin/python -m benchmarks.a2a_cost [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest

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

KEY = "agent:atlas:main"
HTTP = "HTTP /tools/invoke sessions_send"
A2A_SDK = "A2A SendMessage, a2a-sdk client"
A2A_RAW = "A2A SendMessage, plain JSON-RPC"
A2A_STREAM = "A2A SendStreamingMessage, a2a-sdk client"
TARGET = 2.0
HEADERS = {"authorization": f"Bearer {TOKEN}", "a2a-version": "1.0"}


def _message(i: int, context_id: str) -> Message:
    return Message(
        role=Role.ROLE_USER,
        message_id=str(uuid.uuid4()),
        context_id=context_id,
        parts=[Part(text=f"m{i}")],
    )


class SdkCaller:
    """Sequential messages into one context through one SDK client."""

    def __init__(self, client: Client, context_id: str, events: int) -> None:
        self.client, self.context_id, self.events = client, context_id, events

    async def __call__(self, i: int) -> object:
        request = SendMessageRequest(message=_message(i, self.context_id))
        answers = [answer async for answer in self.client.send_message(request)]
        assert len(answers) >= self.events, answers
        return answers


class RawCaller:
    """Sequential SendMessage requests as plain JSON over one keep-alive connection."""

    def __init__(self, http: httpx.AsyncClient, context_id: str) -> None:
        self.http, self.context_id = http, context_id

    async def __call__(self, i: int) -> object:
        message = {"role": "ROLE_USER", "messageId": str(uuid.uuid4()),
                   "contextId": self.context_id, "parts": [{"text": f"m{i}"}]}  # fmt: skip
        body = {"jsonrpc": "2.0", "id": i, "method": "SendMessage", "params": {"message": message}}
        answer = (await self.http.post("/a2a/atlas", json=body)).json()
        assert answer["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED", answer
        return answer


@contextlib.asynccontextmanager
async def sdk_client(url: str, *, streaming: bool) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(headers=HEADERS, timeout=60) as http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming))
        yield await factory.create_from_url(f"{url}/a2a/atlas")


async def issued_context(client: Client) -> str:
    """A context the gateway issued (the first message's, without contextId)."""
    request = SendMessageRequest(message=_message(0, ""))
    answers = [answer async for answer in client.send_message(request)]
    return str(answers[0].task.context_id)


async def measure(count: int, rounds: int) -> Costs:
    with tempfile.TemporaryDirectory() as name:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(gateway_command(Path(name), port), url) as gateway:
            async with contextlib.AsyncExitStack() as stack:
                plain = await stack.enter_async_context(sdk_client(url, streaming=False))
                streaming = await stack.enter_async_context(sdk_client(url, streaming=True))
                raw = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=60)
                )
                callers: dict[str, Any] = {
                    HTTP: HttpCaller(url, KEY, 200),
                    A2A_SDK: SdkCaller(plain, await issued_context(plain), 1),
                    A2A_RAW: RawCaller(raw, await issued_context(plain)),
                    A2A_STREAM: SdkCaller(streaming, await issued_context(streaming), 3),
                }
                return await interleave(callers, gateway.pid, count, rounds)


def report(count: int, costs: Costs) -> dict[str, dict[str, float]]:
    """Print the table and the ratios to HTTP; return the figures."""
    title = f"a message to an existing session, {count} sequential calls each, interleaved"
    figures = cost_table(title, costs, HTTP)
    for what, key in (("p50 latency", "p50_vs_http"), ("gateway CPU", "gateway_cpu_vs_http")):
        ratio = figures[A2A_SDK][key]
        verdict = "met" if ratio <= TARGET else "NOT met"
        console.print(f"A2A SendMessage / HTTP, {what}: {ratio:.2f}x "
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
