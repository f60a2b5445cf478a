"""OpenClaw's session ids for sessiongate's sessions, and the way back from one.

OpenClaw names a conversation instance by a ``sessionId`` (a UUID); sessiongate
keys sessions by key. A session sessiongate created answers with a stable id made
from its key; an imported one also keeps the id it had in OpenClaw (in its
messages' ``meta.openclaw.sessionId``). `find_session_id` finds the session
either names: a scan of the store (O(sessions); a compatibility path).
"""

from __future__ import annotations

import uuid

from sessiongate.errors import SessionNotFoundError
from sessiongate.store.base import Origin, SessionStore

__all__ = ["find_session_id", "session_id"]

SESSION_ID_NAMESPACE = uuid.UUID("0c3b6a52-7f0e-4d55-a0e1-2f5d1c9b8e44")
PAGE = 1000


def session_id(key: str) -> str:
    """A stable OpenClaw-shaped session id for a key (sessiongate keys sessions by key)."""
    return str(uuid.uuid5(SESSION_ID_NAMESPACE, key))


async def find_session_id(store: SessionStore, wanted: str) -> str:
    """The key of the session `wanted` names: its own id, or the id it carried in OpenClaw
    before it was imported; SessionNotFoundError naming the id otherwise (never created)."""
    wanted = wanted.strip().lower()
    imported: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.list_sessions(limit=PAGE, cursor=cursor)
        for session in page.sessions:
            if session_id(session.key) == wanted:
                return session.key
            if session.provenance.origin == Origin.IMPORTED:
                imported.append(session.key)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    for key in imported:
        first = await store.history(key, limit=1, before=2)
        origin = first[0].meta.get("openclaw") if first else None
        if isinstance(origin, dict) and str(origin.get("sessionId", "")).lower() == wanted:
            return key
    raise SessionNotFoundError(
        f"no session has OpenClaw sessionId {wanted!r} (not one sessiongate gave, nor one an "
        "imported session carried); nothing was created",
        details={"requestedSessionId": wanted, "suggestions": []},
    )
