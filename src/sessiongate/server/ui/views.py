"""The read-only views: overview, sessions, one session, audit; sign-in and sign-out.

Every view is one more surface over the gateway's calls (`Gateway.invoke` and its
methods), as the operator the gateway token stands for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sessiongate.audit import AUDITED
from sessiongate.doctor import Finding, phantom_lints, scan
from sessiongate.errors import RouteNotFoundError, UnauthorizedError
from sessiongate.gateway import Gateway
from sessiongate.keys import SessionKind, agent_of_key
from sessiongate.paths import token_file
from sessiongate.policy import effective_policies
from sessiongate.resolver import Caller
from sessiongate.run_records import describe_store
from sessiongate.server.auth import UI_COOKIE, UI_COOKIE_MAX_AGE, issue_ui_cookie
from sessiongate.server.failed_auth import FailedAuthLimiter, client_address
from sessiongate.server.requests import SIGNIN_BODY_BYTES, read_form
from sessiongate.server.ui.rendering import render, render_error, render_page
from sessiongate.server.ui.security import PREFIX, Signed, action, page, set_cookie
from sessiongate.store.base import Origin, SessionStatus, now
from sessiongate.tools.args import SessionArgs

__all__ = ["OPERATOR", "audit_view", "message_rows", "overview", "session_view", "sessions_view"]

OPERATOR = Caller(None, "ui")
PAGE_ROWS = 50
SCAN_CHUNKS = 40  # a filtered page reads at most 40 x 50 sessions before offering "more"
KINDS = tuple(kind.value for kind in SessionKind)
DECISIONS = tuple(d.value for d in AUDITED)
DOCTOR_SCAN_LIMIT = 20_000  # the overview scans for phantoms itself only below this many sessions


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _next_target(raw: str | None) -> str:
    """Only a path of this page may follow the sign-in (no open redirect)."""
    if raw and raw.startswith(PREFIX) and not raw.startswith("//"):
        return raw
    return f"{PREFIX}/"


async def root(request: Request) -> Response:
    """`GET /` from a browser (it accepts HTML): the control page. Any other client gets
    the usual wire-form 404."""
    if "text/html" not in request.headers.get("accept", ""):
        raise HTTPException(404, "Not Found")
    return RedirectResponse(f"{PREFIX}/", 303)


def token_where(request: Request) -> tuple[str, str | None]:
    """Where the person signing in finds the token: the config's value, or (a loopback
    gateway with no token configured) the state folder's token file."""
    if gateway_of(request).config.gateway.auth.token:
        return "this gateway's gateway.auth.token (in its config or its environment)", None
    return "in the file", str(token_file())


async def signin_form(request: Request) -> Response:
    next_target = _next_target(request.query_params.get("next"))
    return render(
        request,
        "signin.html",
        title="Sign in",
        next=next_target,
        problem=None,
        token_where=token_where(request),
    )


async def signin(request: Request) -> Response:
    """Exchange the gateway token for the page's signed cookie (the form is read before
    anyone is known, so at most a few KiB of it); wrong tokens are paced per address."""
    limiter: FailedAuthLimiter = request.app.state.failed_auth
    client = client_address(request.client)
    limiter.refuse_if_locked(client, "ui")  # before a byte of the form is read
    form = await read_form(request, SIGNIN_BODY_BYTES)
    next_target = _next_target(form.get("next"))
    try:
        limiter.check(client, "ui", request.app.state.token, form.get("token", "").strip() or None)
    except UnauthorizedError as exc:
        problem = (
            "Enter the gateway token."
            if not form.get("token")
            else "That is not this gateway's "
            "token. It is gateway.auth.token, or the gateway.token file in the state dir."
        )
        return render(
            request,
            "signin.html",
            exc.http_status,
            title="Sign in",
            next=next_target,
            problem=problem,
            token_where=token_where(request),
        )
    value, cookie = issue_ui_cookie(request.app.state.token)
    sign_ins = gateway_of(request).page_sessions
    await sign_ins.open_page_session(cookie.session_id, now() + UI_COOKIE_MAX_AGE)
    response = RedirectResponse(next_target, 303)
    set_cookie(response, request, value)
    return response


@action
async def signout(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    """Sign this page out here and in every gateway process (a copy of the cookie is void)."""
    await gateway_of(request).page_sessions.close_page_session(signed.session_id)
    response = RedirectResponse(f"{PREFIX}/signin", 303)
    response.delete_cookie(UI_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@dataclass(slots=True)
class DoctorScan:
    """The page's last doctor scan (the overview shows it for stores too big to scan there)."""

    at: float
    findings: list[Finding]


async def doctor_scan(request: Request) -> DoctorScan:
    """Scan now and remember the result for the overview."""
    result = DoctorScan(time.time(), await scan(gateway_of(request)))
    request.app.state.ui_doctor_scan = result
    return result


async def _phantom_summary(request: Request, total: int) -> DoctorScan | None:
    last: DoctorScan | None = getattr(request.app.state, "ui_doctor_scan", None)
    if last is None and total <= DOCTOR_SCAN_LIMIT:
        last = await doctor_scan(request)
    return last


@page
async def overview(request: Request, signed: Signed) -> Response:
    gateway = gateway_of(request)
    counts = await gateway.session_counts()
    hour_ago = time.time() - 3600
    recent = [e for e in await gateway.audit.recent() if _event_time(e) >= hour_ago]
    decisions = {d: sum(1 for e in recent if e.get("decision") == d) for d in DECISIONS}
    return render_page(
        request,
        signed,
        "overview.html",
        "Overview",
        started=gateway.started_at,
        store=describe_store(gateway.config.storage_url),
        policies=effective_policies(gateway.config),
        counts=sorted(counts.items()),
        total=sum(counts.values()),
        decisions=decisions,
        doctor=await _phantom_summary(request, sum(counts.values())),
    )


def _event_time(event: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(event.get("time"))).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True, slots=True)
class SessionFilter:
    agent: str | None
    kind: str | None
    origin: str | None
    text: str | None

    @classmethod
    def of(cls, request: Request) -> SessionFilter:
        q = request.query_params
        text = q.get("q", "").strip().lower()
        return cls(
            q.get("agent") or None, q.get("kind") or None, q.get("origin") or None, text or None
        )

    def keeps(self, session: dict[str, Any]) -> bool:
        if self.origin and session["origin"] != self.origin:
            return False
        label = (session.get("label") or "").lower()
        return not self.text or self.text in session["key"] or self.text in label

    @property
    def narrows(self) -> bool:
        """Whether rows are filtered here (origin, text) rather than by the gateway."""
        return bool(self.origin or self.text)

    def query(self, cursor: str | None = None) -> str:
        fields = {
            "agent": self.agent,
            "kind": self.kind,
            "origin": self.origin,
            "q": self.text,
            "cursor": cursor,
        }
        return urlencode({k: v for k, v in fields.items() if v})


async def _session_page(
    gateway: Gateway, wanted: SessionFilter, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Matching sessions from `cursor` on; a rare match may need several pages."""
    args = {k: v for k, v in (("agentId", wanted.agent), ("kind", wanted.kind)) if v}
    rows: list[dict[str, Any]] = []
    scanned = 0
    for _ in range(SCAN_CHUNKS if wanted.narrows else 1):
        page = await gateway.invoke(
            "sessions_list", {**args, "limit": PAGE_ROWS, "cursor": cursor}, OPERATOR
        )
        scanned += len(page["sessions"])
        rows += [s for s in page["sessions"] if wanted.keeps(s)]
        cursor = page["nextCursor"]
        if cursor is None or len(rows) >= PAGE_ROWS:
            break
    return rows, cursor, scanned


def _marked(gateway: Gateway, session: dict[str, Any]) -> dict[str, Any]:
    lints = phantom_lints(gateway, session["key"], session["origin"])
    live = session["status"] == SessionStatus.ACTIVE and session["aliasOf"] is None
    return {**session, "phantom": lints[0].message if lints and live else None}


@page
async def sessions_view(request: Request, signed: Signed) -> Response:
    gateway = gateway_of(request)
    wanted = SessionFilter.of(request)
    cursor = request.query_params.get("cursor") or None
    rows, next_cursor, scanned = await _session_page(gateway, wanted, cursor)
    return render_page(
        request,
        signed,
        "sessions.html",
        "Sessions",
        sessions=[_marked(gateway, s) for s in rows],
        wanted=wanted,
        agents=gateway.config.agent_ids,
        kinds=KINDS,
        origins=tuple(o.value for o in Origin),
        next_query=wanted.query(next_cursor) if next_cursor else None,
        first_query=wanted.query() if cursor else None,
        scanned=scanned,
    )


async def _history(
    gateway: Gateway, key: str, before: int | None, follow_alias: bool = True
) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"sessionKey": key, "limit": PAGE_ROWS, "followAlias": follow_alias}
    if before is not None:
        args["before"] = before
    messages: list[dict[str, Any]] = (await gateway.invoke("sessions_history", args, OPERATOR))[
        "messages"
    ]
    return messages


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


@page
async def session_view(request: Request, signed: Signed) -> Response:
    gateway = gateway_of(request)
    own = request.query_params.get("archived") == "1"  # the key's own, not its alias target
    args = SessionArgs(session_key=request.path_params["key"], follow_alias=not own)
    resolution = await gateway.resolve(args, OPERATOR)
    before = _int_param(request, "before")
    messages = await _history(gateway, resolution.key, before, follow_alias=not own)
    session = _marked(gateway, resolution.session.to_wire())
    oldest = min((m["seq"] for m in messages), default=1)
    return render_page(
        request,
        signed,
        "session.html",
        session["key"],
        session=session,
        requested=resolution.requested_key,
        aliases=await gateway.aliases_of(SessionArgs(session_key=resolution.key), OPERATOR),
        messages=messages,
        older=oldest if oldest > 1 else None,
        latest=before is None and not own,
        own=own,
    )


@page
async def message_rows(request: Request, signed: Signed) -> Response:
    """Transcript rows after `after` (the live part of the session view fetches these)."""
    gateway = gateway_of(request)
    key = request.query_params.get("key", "")
    after = _int_param(request, "after") or 0
    messages = [m for m in await _history(gateway, key, None) if m["seq"] > after]
    return render(request, "_messages.html", messages=messages)


def _event_agent(event: dict[str, Any]) -> str | None:
    key = event.get("canonicalKey") or event.get("sessionKey") or event.get("requestedKey")
    return agent_of_key(str(key or ""))


@page
async def audit_view(request: Request, signed: Signed) -> Response:
    gateway = gateway_of(request)
    decision = request.query_params.get("decision") or None
    agent = request.query_params.get("agent") or None
    events = [
        {**e, "agent": _event_agent(e)}
        for e in await gateway.audit.recent()
        if (decision is None or e.get("decision") == decision)
        and (agent is None or _event_agent(e) == agent)
    ][:200]
    return render_page(
        request,
        signed,
        "audit.html",
        "Audit",
        events=events,
        decision=decision,
        agent=agent,
        decisions=DECISIONS,
        agents=gateway.config.agent_ids,
    )


async def page_not_found(request: Request) -> Response:
    """An unknown path under /ui: a page, like every other answer of the page."""
    error = RouteNotFoundError(
        f"no page at {request.url.path[:200]}", details={"path": request.url.path[:200]}
    )
    return render_error(request, error)
