"""Numbers a store may hold: what every backend can write and read back the same way.

Pure functions, called by every backend (and by the importer before it writes),
so that no path can store a value that a later read cannot turn back into a
record: a timestamp of ``1e300`` or infinity is a valid ``REAL``/``double
precision`` but no date, and every listing that shows it would fail.
"""

from __future__ import annotations

import math

from sessiongate.errors import InvalidRequestError

__all__ = ["MAX_TIMESTAMP", "MIN_TIMESTAMP", "check_timestamp", "readable_timestamp"]

MIN_TIMESTAMP = 0.0  # 1970-01-01: nothing sessiongate stores is older
MAX_TIMESTAMP = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last second a datetime holds


def readable_timestamp(value: object) -> float | None:
    """`value` as a stored timestamp (seconds since the epoch), or None when no store may hold it.

    Readable means: a real number (not a bool), finite, between `MIN_TIMESTAMP` and
    `MAX_TIMESTAMP`; an integer too large for a float is not readable either.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    if not math.isfinite(seconds) or not MIN_TIMESTAMP <= seconds <= MAX_TIMESTAMP:
        return None
    return seconds


def check_timestamp(argument: str, value: object) -> float:
    """`value` as a timestamp to store; InvalidRequestError naming `argument` when unreadable."""
    seconds = readable_timestamp(value)
    if seconds is None:
        shown = _shown(value)
        raise InvalidRequestError(
            f"{argument} {shown} is not a time sessiongate can store "
            "(seconds since 1970, up to the year 9999)",
            details={"argument": argument},
        )
    return seconds


def _shown(value: object) -> str:
    """A short form of `value` (the repr of a huge integer would itself fail)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"(an integer of ~{int(value.bit_length() * 0.30103)} digits)"
    return f"{value!r:.40}"
