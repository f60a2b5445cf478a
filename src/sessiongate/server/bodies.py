"""Reading a request body within a cap: the one place every HTTP route reads one.

A body is read only after the route has decided who is asking (wherever the
route allows: the sign-in form is the exception, and its cap is a few KiB), and
never past the route's cap: a declared ``Content-Length`` over it is refused
before a byte is read, an undeclared (chunked) body as soon as it passes it.
What is over is ``PAYLOAD_TOO_LARGE`` (413).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from sessiongate.errors import InvalidRequestError, PayloadTooLargeError

__all__ = ["MAX_FORM_FIELDS", "SIGNIN_BODY_BYTES", "read_body", "read_form_body"]

SIGNIN_BODY_BYTES = 4096  # a token (~43 characters) and a page path; nothing else is read
MAX_FORM_FIELDS = 32  # the page's largest form has six
_MAX_LENGTH_DIGITS = 18  # a Content-Length longer than this is over any cap


async def read_body(request: Request, limit: int, what: str = "body") -> bytes:
    """The body of `request`, at most `limit` bytes (PayloadTooLargeError beyond)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        declared = declared.strip()
        if not declared.isdigit() or len(declared) > _MAX_LENGTH_DIGITS:
            if declared.isdigit():
                raise _too_large(what, limit)
            raise InvalidRequestError(
                f"Content-Length {declared[:24]!r} is not a length", details={}
            )
        if int(declared) > limit:
            raise _too_large(what, limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(what, limit)
    return bytes(body)


async def read_form_body(request: Request, limit: int) -> dict[str, str]:
    """An urlencoded form within `limit` bytes and `MAX_FORM_FIELDS` fields (first value of
    each field); a form over either is refused before it is parsed further."""
    body = await read_body(request, limit, "form")
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
