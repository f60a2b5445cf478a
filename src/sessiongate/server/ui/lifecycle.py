"""The page's delete, reset, archive and unarchive: first what will happen, then do it.

The plan page resolves the session like a read (never creates) and says exactly what
the operation does to it; the form posts back with a reason and runs the gateway's
typed operation as the operator (audited, like every other surface).
"""

from __future__ import annotations

from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from sessiongate.errors import InvalidRequestError
from sessiongate.keys import SessionKind
from sessiongate.outcomes import Outcome
from sessiongate.server.ui.rendering import render_page
from sessiongate.server.ui.security import Signed, action, page
from sessiongate.server.ui.views import OPERATOR, gateway_of
from sessiongate.tools.args import DeleteArgs, ResetArgs, SessionArgs, StatusArgs
from sessiongate.tools.base import validate_args

__all__ = ["lifecycle_apply", "lifecycle_plan"]

Operation = Literal["delete", "reset", "archive", "unarchive"]
OPERATIONS: tuple[Operation, ...] = ("delete", "reset", "archive", "unarchive")


def _operation(raw: str | None) -> Operation:
    for operation in OPERATIONS:
        if raw == operation:
            return operation
    raise InvalidRequestError(
        f"unknown operation {raw!r:.40}: one of {', '.join(OPERATIONS)}",
        details={"argument": "action", "problems": ["action: unknown"]},
    )


@page
async def lifecycle_plan(request: Request, signed: Signed) -> Response:
    """What the operation will do to this session; nothing has changed yet."""
    operation = _operation(request.query_params.get("action"))
    reference = request.query_params.get("sessionKey", "")
    args = SessionArgs(session_key=reference, follow_alias=False)
    session = (await gateway_of(request).resolve(args, OPERATOR)).session
    return _operation_page(
        request,
        signed,
        "lifecycle_plan.html",
        operation,
        session=session.to_wire(),
        is_main=session.kind == SessionKind.MAIN,
    )


async def _apply(request: Request, operation: Operation, form: dict[str, str]) -> Outcome:
    gateway = gateway_of(request)
    raw: dict[str, Any] = {"sessionKey": form.get("sessionKey", "")}
    if form.get("reason", "").strip():
        raw["reason"] = form["reason"].strip()
    if operation == "delete":
        raw["force"] = form.get("force") == "on"
        return await gateway.delete(validate_args(DeleteArgs, raw, "delete"), OPERATOR)
    if operation == "reset":
        raw["oldTranscript"] = "delete" if form.get("oldTranscript") == "delete" else "archive"
        return await gateway.reset(validate_args(ResetArgs, raw, "reset"), OPERATOR)
    args = validate_args(StatusArgs, raw, operation)
    if operation == "archive":
        return await gateway.archive(args, OPERATOR)
    return await gateway.unarchive(args, OPERATOR)


@action
async def lifecycle_apply(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    """Run the confirmed operation; show what it did."""
    operation = _operation(form.get("action"))
    outcome = await _apply(request, operation, form)
    return _operation_page(
        request,
        signed,
        "lifecycle_result.html",
        operation,
        result=outcome.to_wire(),
        session_key=form.get("sessionKey", ""),
    )


def _operation_page(
    request: Request, signed: Signed, template: str, operation: Operation, **context: Any
) -> Response:
    """The plan or the result of one operation: a page titled and about that operation."""
    return render_page(
        request, signed, template, operation.capitalize(), operation=operation, **context
    )
