"""The sessions this process found lately, for the next address of the same key."""

from __future__ import annotations

from collections import OrderedDict

from sessiongate.store.base import SessionRecord

__all__ = ["KnownSessions"]

KNOWN_SESSIONS = 10_000


class KnownSessions:
    """The newest `capacity` sessions found, least recently used dropped first.

    A remembered record goes stale by gaining an alias, being reset or being deleted
    (in another process); storing a message checks each (SessionMovedError,
    SessionResetError, SessionDeletedError) and the resolver forgets the key and
    resolves it again or refuses (`Resolver.deliver`).
    """

    def __init__(self, capacity: int = KNOWN_SESSIONS) -> None:
        self.capacity = capacity
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()

    def get(self, key: str) -> SessionRecord | None:
        """The session remembered under `key` (now the most recently used), if any."""
        record = self._records.get(key)
        if record is not None:
            self._records.move_to_end(key)
        return record

    def remember(self, record: SessionRecord) -> None:
        if record.alias_of is not None:
            return  # a redirect: the next address follows it again
        self._records[record.key] = record
        self._records.move_to_end(record.key)
        if len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def forget(self, key: str) -> None:
        self._records.pop(key, None)
