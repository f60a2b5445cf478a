"""The one catch-all each surface keeps at its edge.

An exception that is not a `SessionGateError` is a bug or an outage nobody
typed: it is logged here with its traceback and the request id, and the caller
gets `InternalError` (``INTERNAL_ERROR``) carrying only that id — never the
traceback. HTTP routes, WebSocket requests, LLM tool calls (and any surface
added later) call `internal_error` from their single ``except Exception``.
"""

from __future__ import annotations

import structlog

from sessiongate.errors import InternalError
from sessiongate.request_ids import begin_request, current_request_id

__all__ = ["internal_error"]

log = structlog.get_logger("sessiongate.catchall")


def internal_error(exc: BaseException, surface: str, where: str) -> InternalError:
    """Log `exc` (with traceback) under the current request id; the error to answer with."""
    request_id = current_request_id() or begin_request()
    log.error("unexpected error", surface=surface, where=where, request_id=request_id, exc_info=exc)
    return InternalError.for_request(request_id)
