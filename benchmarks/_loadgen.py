"""A minimal HTTP/1.1 keep-alive load generator, so the client is not what gets measured.

httpx spends more CPU per request than the gateway does; on a 2-core machine
that caps any throughput figure at the client's speed. This sends pre-rendered
requests over raw asyncio streams and reads responses by Content-Length.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any


def render(host: str, port: int, path: str, body: dict[str, Any], token: str) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def render_get(host: str, port: int, path: str, token: str) -> bytes:
    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    return head.encode()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def hammer(
    host: str, port: int, make_request: Callable[[int], bytes], total: int, connections: int
) -> float:
    """Send `total` requests over `connections` keep-alive connections; return requests/s."""
    counter = iter(range(total))
    failures: list[bytes] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                writer.write(make_request(i))
                status, body = await _read_response(reader)
                if status != 200:
                    failures.append(body)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    if failures:
        raise AssertionError(f"{len(failures)} failed requests, e.g. {failures[0][:300]!r}")
    return total / elapsed


async def sequential(
    host: str, port: int, make_request: Callable[[int], bytes], count: int, expect: int = 200
) -> list[float]:
    """Seconds per request for `count` requests one after another over one connection."""
    reader, writer = await asyncio.open_connection(host, port)
    samples = []
    try:
        for i in range(count):
            request = make_request(i)
            started = time.perf_counter()
            writer.write(request)
            status, body = await _read_response(reader)
            samples.append(time.perf_counter() - started)
            if status != expect:
                raise AssertionError(f"status {status}, expected {expect}: {body[:300]!r}")
    finally:
        writer.close()
    return samples
