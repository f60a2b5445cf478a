"""A JSON answer rendered by orjson: the wire form of every success and refusal.

Starlette's `JSONResponse` renders with `json.dumps`, which builds an encoder per call
(~2-3% of a request's CPU in the floor's profiles). The text is the same compact UTF-8
JSON; what orjson cannot write (a lone surrogate, a key that is not a string, an integer
beyond 64 bits) is written by `json`, escaped to ASCII.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from sessiongate.wire import dump_json_bytes

__all__ = ["WireResponse"]


class WireResponse(JSONResponse):
    """`JSONResponse` with its body rendered by `sessiongate.wire.dump_json_bytes`."""

    def render(self, content: Any) -> bytes:
        return dump_json_bytes(content)
