"""What every HTTP surface reads from a request the same way: its body, within a cap, and
whether it comes from a page of this gateway's own origin.

A body is read only after the route has decided who is asking (wherever the route
allows: the control page's sign-in form is the exception, and its cap is
`SIGNIN_BODY_BYTES`), and never past the route's cap (by default
``gateway.maxBodyBytes``): a declared ``Content-Length`` over it is refused before a
byte is read, an undeclared (chunked) body as soon as it passes it (413).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.types import Receive

from sessiongate.errors import InvalidRequestError, PayloadTooLargeError

__all__ = [
    "MAX_FORM_FIELDS",
    "SIGNIN_BODY_BYTES",
    "read_body",
    "read_form",
    "receive_body",
    "same_origin",
]

SIGNIN_BODY_BYTES = 4096  # a token (~43 characters) and a page path; nothing else is read
MAX_FORM_FIELDS = 32  # the page's largest form has six
_MAX_LENGTH_DIGITS = 18  # a Content-Length longer than this is over any cap
_HTTP_SCHEME = {"ws": "http", "wss": "https"}  # a page's WebSocket has its page's origin


async def read_body(request: Request, what: str = "body", limit: int | None = None) -> bytes:
    """The whole body, refused (413) once it passes `limit` (default ``gateway.maxBodyBytes``)."""
    if limit is None:
        limit = request.app.state.gateway.config.gateway.max_body_bytes
    if _declared(request.headers.get("content-length"), what, limit):
        return await request.body()  # the server stops reading at the declared length
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(what, limit)
    return bytes(body)


async def receive_body(
    receive: Receive, content_length: str | None, limit: int, what: str = "body"
) -> bytes:
    """`read_body` straight from the ASGI `receive` (the hot routes have no `Request`):
    the same refusals, and `ClientDisconnect` when the client leaves mid-body."""
    declared = _declared(content_length, what, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            if not message.get("more_body", False) and not chunks:
                if not declared and len(chunk) > limit:
                    raise _too_large(what, limit)
                return chunk  # the whole body in one message: the usual case
            chunks.append(chunk)
            size += len(chunk)
            if not declared and size > limit:
                raise _too_large(what, limit)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _declared(content_length: str | None, what: str, limit: int) -> bool:
    """Whether the request declares its length; refused if that is no length or over `limit`."""
    declared = (content_length or "").strip()
    if not declared:
        return False
    if not declared.isdigit():
        raise InvalidRequestError(f"Content-Length {declared[:24]!r} is not a length")
    if len(declared) > _MAX_LENGTH_DIGITS or int(declared) > limit:
        raise _too_large(what, limit)
    return True


async def read_form(request: Request, limit: int | None = None) -> dict[str, str]:
    """An urlencoded form (first value of each field) within `limit` bytes (default
    ``gateway.maxBodyBytes``) and `MAX_FORM_FIELDS` fields."""
    body = await read_body(request, "form", limit)
    if body.count(b"&") >= MAX_FORM_FIELDS:
        raise InvalidRequestError(
            f"form with more than {MAX_FORM_FIELDS} fields", details={"limit": MAX_FORM_FIELDS}
        )
    form: dict[str, str] = {}
    text = body.decode("utf-8", "replace")
    for name, value in parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS):
        form.setdefault(name, value)
    return form


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
