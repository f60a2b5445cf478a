"""OpenClaw's `/tools/invoke` conventions: its request fields and, with
``gateway.compat.openclaw: true``, its result envelope and error shapes.

OpenClaw answers ``{ok: true, result: {content: [{type: "text", text: "<JSON>"}],
details: {...}}}``; an unknown tool is ``404 {ok: false, error: {type: "not_found",
message}}`` and a bad token ``401 {error: {message: "Unauthorized", type:
"unauthorized"}}``. sessiongate's own ``code`` and ``details`` ride along in the
error, so a script can still tell a refused key (``SESSION_NOT_FOUND`` with its
suggestions) from anything else.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

from sessiongate.errors import InvalidRequestError, SessionGateError, UnauthorizedError
from sessiongate.fields import MAX_LIST_LIMIT
from sessiongate.tools import get_tool
from sessiongate.tools.base import ToolArgs, validate_args

__all__ = [
    "clamp_list_limit",
    "dry_run",
    "dry_run_result",
    "openclaw_envelope",
    "openclaw_error",
    "refuse_action",
]

_ERROR_TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    429: "too_many_requests",
}


def clamp_list_limit(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Under gateway.compat.openclaw: a sessions_list limit over the maximum is clamped (the
    answer's nextCursor pages on), as OpenClaw's callers expect (its test client asks 100000)."""
    limit = args.get("limit")
    if tool == "sessions_list" and type(limit) is int and limit > MAX_LIST_LIMIT:
        return {**args, "limit": MAX_LIST_LIMIT}
    return args


def refuse_action(tool: str, action: str) -> InvalidRequestError:
    """OpenClaw's `action` selects an action of multi-action tools; no tool here has any."""
    return InvalidRequestError(
        f"{tool}: takes no action (got action {action!r}); leave action out",
        details={"argument": "action", "tool": tool},
    )


def dry_run(tool: str, args: dict[str, Any], allowed: list[str]) -> dict[str, Any]:
    """`dryRun: true`: check the tool, its allow-list and its arguments; run nothing."""
    spec = get_tool(tool, allowed)
    return dry_run_result(tool, validate_args(spec.args_model, args, tool))


def dry_run_result(tool: str, checked: ToolArgs) -> dict[str, Any]:
    """What `dryRun: true` answers for arguments already checked."""
    return {"dryRun": True, "tool": tool, "args": checked.model_dump(by_alias=True)}


def openclaw_envelope(result: dict[str, Any]) -> JSONResponse:
    """The outcome of a tool call in OpenClaw's envelope."""
    text = json.dumps(result, separators=(",", ":"))
    return JSONResponse(
        {"ok": True, "result": {"content": [{"type": "text", "text": text}], "details": result}}
    )


def openclaw_error(error: SessionGateError) -> JSONResponse:
    """A refusal in OpenClaw's error shape (the HTTP edge answers with it: `speak_errors`)."""
    if isinstance(error, UnauthorizedError):
        return JSONResponse({"error": {"message": "Unauthorized", "type": "unauthorized"}}, 401)
    wire = error.to_wire()["error"]
    body = {
        "type": _ERROR_TYPES.get(error.http_status, "tool_error"),
        "message": error.message,
        "code": error.code,
        "details": wire["details"],
    }
    return JSONResponse({"ok": False, "error": body}, error.http_status)
