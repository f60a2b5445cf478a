"""Paging for callers: only rows they may see, and cursors that are opaque and authenticated.

`VisibleListing` pages through the sessions one caller may see: it scans the
store past rows the caller may not see and gives a cursor only when a further
visible row exists, so neither an empty page nor a cursor betrays hidden rows.

`CursorSigner` turns a store position into the cursor handed out.

A cursor is ``base64url(position) . HMAC(key, view ‖ position)`` truncated to
16 bytes, where the view is who asks (operator or which session) and the
filters of the listing. A caller cannot forge a position, replay another
view's cursor, or learn a row id from it; a page with no visible row after it
carries no cursor at all (see `Gateway.list_sessions`).

The key is derived from ``gateway.auth.token`` when one is configured, so every
gateway process sharing a store accepts the others' cursors; otherwise it is
random per process (a cursor then lives as long as the process that issued it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from sessiongate.errors import InvalidRequestError
from sessiongate.store.base import SessionLookup, SessionPage, SessionRecord

__all__ = ["CursorSigner", "VisibleListing"]

TAG_BYTES = 16
SCAN_PAGE = 500


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    """Seals store positions into cursors and opens them again for the same view."""

    def __init__(self, secret: str | None = None) -> None:
        material = secret.encode() if secret else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"sessiongate cursor v1\0" + material).digest()

    def _tag(self, view: str, position: bytes) -> bytes:
        message = view.encode() + b"\0" + position
        return hmac.new(self._key, message, hashlib.sha256).digest()[:TAG_BYTES]

    def seal(self, position: str | None, view: str) -> str | None:
        """The cursor a caller with `view` passes back to continue after `position`."""
        if position is None:
            return None
        raw = position.encode()
        return f"{_b64(raw)}.{_b64(self._tag(view, raw))}"

    def open(self, cursor: str | None, view: str) -> str | None:
        """The position inside a cursor issued for `view`; InvalidRequestError otherwise."""
        if cursor is None or cursor == "":
            return None
        try:
            body, tag = cursor.split(".", 1)
            raw = _unb64(body)
            valid = hmac.compare_digest(_unb64(tag), self._tag(view, raw))
        except ValueError:
            valid = False
        if not valid:
            raise InvalidRequestError(
                "invalid cursor: pass back the nextCursor of a previous page of the same "
                "listing (same caller, same filters)",
                details={"argument": "cursor"},
            )
        return raw.decode()


class VisibleListing:
    """Pages of the sessions one caller may see (of one kind, if given), newest first."""

    def __init__(
        self,
        store: SessionLookup,
        may_see: Callable[[SessionRecord], Awaitable[bool]] | None,
        kind: str | None,
    ) -> None:
        self.store = store
        self.may_see = may_see  # None: the caller sees everything (an operator)
        self.kind = kind

    async def _chunk(self, agent_id: str | None, limit: int, start: str | None) -> SessionPage:
        return await self.store.list_sessions(
            agent_id=agent_id, kind=self.kind, limit=limit, cursor=start
        )

    async def page(self, agent_id: str | None, limit: int, start: str | None) -> SessionPage:
        """Up to `limit` visible sessions after store position `start`; the store position
        after the last of them only when another visible session follows."""
        if self.may_see is None:
            return await self._chunk(agent_id, limit, start)
        visible: list[SessionRecord] = []
        last = (start, -1)  # where the last visible row sits: (its chunk's start, index)
        while True:
            chunk = await self._chunk(agent_id, SCAN_PAGE, start)
            for index, record in enumerate(chunk.sessions):
                if not await self.may_see(record):
                    continue
                if len(visible) == limit:
                    return SessionPage(visible, await self._position_after(agent_id, *last))
                visible.append(record)
                last = (start, index)
            if chunk.next_cursor is None:
                return SessionPage(visible, None)
            start = chunk.next_cursor

    async def _position_after(self, agent_id: str | None, start: str | None, index: int) -> str:
        following = await self._chunk(agent_id, index + 1, start)
        assert following.next_cursor is not None  # a visible row follows
        return following.next_cursor
