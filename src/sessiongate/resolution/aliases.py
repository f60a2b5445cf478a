"""Where a key leads: a repaired (aliased) session redirects to another, up to a few hops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sessiongate.store.base import SessionRecord

__all__ = ["MAX_ALIAS_HOPS", "follow_aliases"]

MAX_ALIAS_HOPS = 8


async def follow_aliases(
    find: Callable[[str], Awaitable[SessionRecord | None]], record: SessionRecord | None
) -> SessionRecord | None:
    """The session `record` redirects to (itself when it has no alias, or when the
    alias leads nowhere)."""
    hops = 0
    while record is not None and record.alias_of and hops < MAX_ALIAS_HOPS:
        target = await find(record.alias_of)
        if target is None:
            return record
        record, hops = target, hops + 1
    return record
