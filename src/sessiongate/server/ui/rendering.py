"""Jinja2 templates of the control page, and the one way a view answers with HTML."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from sessiongate import __version__
from sessiongate.errors import SessionGateError
from sessiongate.keys import key_segments
from sessiongate.server.ui.assets import asset_url
from sessiongate.text import visible

if TYPE_CHECKING:
    from sessiongate.server.ui.security import Signed

__all__ = ["render", "render_error", "render_page"]


def _ago(timestamp: str | float | None) -> str:
    """'3 min ago' for an ISO time or epoch seconds."""
    if timestamp is None:
        return "—"
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp).timestamp()
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _clock(timestamp: str | None) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    if not timestamp:
        return "—"
    return datetime.fromisoformat(timestamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _visible(value: Any) -> Any:
    """Every value a template prints: controls and bidi formatting shown as ⟨U+XXXX⟩, so a
    label cannot reorder or hide the text around it (and is isolated by the page's CSS)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def _key_path(key: str) -> str:
    """A session key as a URL path segment under /ui/sessions/ (``#``, ``?``, ``%`` and the
    rest percent-encoded; ``:`` kept for legibility)."""
    return quote(key, safe=":@")


def _keywrap(key: str) -> Markup:
    """A key that may break only after a colon (never inside a segment) on a narrow screen."""
    return Markup(":<wbr>").join(escape(part) for part in key_segments(str(key)))


ENV = Environment(
    loader=PackageLoader("sessiongate.server.ui", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_visible,
)
ENV.globals.update(asset=asset_url, version=__version__)
ENV.filters.update(ago=_ago, clock=_clock, keypath=_key_path, keywrap=_keywrap)


def render(
    request: Request, template: str, status: int = 200, csrf: str = "", **context: Any
) -> HTMLResponse:
    """A page (never cached: it shows live state)."""
    html = ENV.get_template(template).render(path=request.url.path, csrf=csrf, **context)
    return HTMLResponse(html, status, headers={"cache-control": "no-store"})


def render_page(
    request: Request, signed: Signed, template: str, title: str, status: int = 200,
    **context: Any,
) -> HTMLResponse:  # fmt: skip
    """A page for the signed-in operator: titled, its forms carrying the sign-in's CSRF token."""
    return render(request, template, status, signed.csrf, title=title, **context)


def render_error(request: Request, error: SessionGateError, csrf: str = "") -> HTMLResponse:
    """A refused request as a page: the same code, message and details as on the wire."""
    wire = error.to_wire()["error"]
    return render(request, "error.html", error.http_status, csrf, error=wire, title=error.code)
