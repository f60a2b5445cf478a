"""The views that change state: send (as a chosen caller) and doctor's repair.

Send parses the form once into the shared `SendArgs` and calls `Gateway.send`; repair shows
doctor's dry run first and then applies it with the same code as
``sessiongate doctor --fix``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sessiongate.doctor import Finding, plan_repair, repair
from sessiongate.errors import ConflictError, SessionGateError
from sessiongate.keys import main_key
from sessiongate.server.ui.rendering import render_page
from sessiongate.server.ui.security import Signed, action, page
from sessiongate.server.ui.views import OPERATOR, doctor_scan, gateway_of
from sessiongate.tools.args import SendArgs, SessionArgs
from sessiongate.tools.base import validate_args

__all__ = ["doctor_plan", "doctor_repair", "doctor_view", "send", "send_form"]

SEND_TIMEOUT_SECONDS = 15


def _send_page(
    request: Request,
    signed: Signed,
    fields: dict[str, Any],
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    callers = [main_key(a.id) for a in gateway_of(request).config.agents.entries]
    return render_page(
        request,
        signed,
        "send.html",
        "Send",
        status,
        fields=fields,
        callers=callers,
        result=result,
        error=error,
    )


@page
async def send_form(request: Request, signed: Signed) -> Response:
    q = request.query_params
    fields = {
        "caller": q.get("caller", ""),
        "sessionKey": q.get("sessionKey", ""),
        "message": "",
        "mustExist": True,
    }
    return _send_page(request, signed, fields)


@action
async def send(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    """Send as the chosen caller; a refusal is shown with its suggestions as buttons."""
    gateway = gateway_of(request)
    caller_key = form.get("caller", "").strip()
    fields: dict[str, Any] = {
        "caller": caller_key,
        "sessionKey": form.get("sessionKey", "").strip(),
        "message": form.get("message", ""),
        "mustExist": form.get("mustExist") == "on",
    }
    raw: dict[str, Any] = {
        "sessionKey": fields["sessionKey"],
        "message": fields["message"],
        "timeoutSeconds": SEND_TIMEOUT_SECONDS,
    }
    if fields["mustExist"]:
        raw["createOnMiss"] = False
    result, error, status = None, None, 200
    try:  # a refusal is shown on the form, with its suggestions as buttons
        args = validate_args(SendArgs, raw, "send")
        caller = await gateway.caller_for(caller_key or None, "ui")
        result = (await gateway.send(args, caller)).to_wire()
    except SessionGateError as exc:
        error, status = exc.to_wire()["error"], exc.http_status
    return _send_page(request, signed, fields, result, error, status)


@page
async def doctor_view(request: Request, signed: Signed) -> Response:
    """Findings with their evidence: each finding's session as the gateway shows it."""
    gateway = gateway_of(request)
    findings = (await doctor_scan(request)).findings
    evidence = {}
    for finding in findings:
        evidence[finding.session_key] = (
            await gateway.resolve(SessionArgs(session_key=finding.session_key), OPERATOR)
        ).session.to_wire()
    return render_page(
        request,
        signed,
        "doctor.html",
        "Doctor",
        findings=findings,
        evidence=evidence,
    )


async def _finding_for(request: Request, reference: str) -> Finding:
    """The current fixable finding about `reference`; the key must name a visible session."""
    gateway = gateway_of(request)
    args = SessionArgs(session_key=reference)
    key = (await gateway.resolve(args, OPERATOR)).key  # SESSION_NOT_FOUND if missing
    for finding in (await doctor_scan(request)).findings:
        if finding.session_key == key and finding.fixable:
            return finding
    raise ConflictError(
        f"doctor finds nothing to repair in {key!r} (repaired already, or healthy)",
        details={"sessionKey": key},
    )


@page
async def doctor_plan(request: Request, signed: Signed) -> Response:
    """The dry run: which messages move where, what is archived, which alias is added."""
    finding = await _finding_for(request, request.query_params.get("sessionKey", ""))
    plan = await plan_repair(gateway_of(request), finding)
    return render_page(request, signed, "doctor_plan.html", "Repair", plan=plan)


@action
async def doctor_repair(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    """Apply one finding's repair (doctor --fix's code), then scan again and show both."""
    gateway = gateway_of(request)
    finding = await _finding_for(request, form.get("sessionKey", ""))
    results = await repair(gateway, [finding])
    remaining = (await doctor_scan(request)).findings
    return render_page(
        request,
        signed,
        "doctor_result.html",
        "Repaired",
        results=results,
        remaining=remaining,
        finding=finding,
    )
