"""What every HTTP surface reads from a request the same way: its body, within the gateway's
limit, and whether it comes from a page of this gateway's own origin."""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request

from sessiongate.errors import PayloadTooLargeError

__all__ = ["read_body", "same_origin"]

_HTTP_SCHEME = {"ws": "http", "wss": "https"}  # a page's WebSocket has its page's origin


async def read_body(request: Request, what: str = "body", limit: int | None = None) -> bytes:
    """The whole body, refused (413) once it passes `limit` (``gateway.maxBodyBytes`` of the
    app's gateway unless given)."""
    if limit is None:
        limit = int(request.app.state.gateway.config.gateway.max_body_bytes)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        if int(declared) > limit:
            raise _too_large(what, limit)
        return await request.body()  # the server stops reading at the declared length
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(what, limit)
    return bytes(body)


def _too_large(what: str, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"{what} over {limit} bytes", details={"limit": limit})


def same_origin(connection: HTTPConnection, *, absent: bool) -> bool:
    """Whether the Origin header names this gateway, scheme and host; `absent` is the answer
    when there is none (a client that is not a browser)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return absent
    scheme = _HTTP_SCHEME.get(connection.url.scheme, connection.url.scheme)
    return origin == f"{scheme}://{connection.headers.get('host')}"
