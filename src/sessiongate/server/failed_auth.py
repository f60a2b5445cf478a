"""Failed authentication, paced per client address: sign-in, bearer token, WebSocket `connect`.

Each client address has a bucket of `gateway.limits.failedAuthBurstPerClient`
failures, refilled at `failedAuthPerMinutePerClient`. A wrong token (or sign-in)
takes one; while the bucket is empty, every attempt from that address is refused
with ``TOO_MANY_REQUESTS`` (429) before the token is even compared, so guessing
runs at the refill rate, not at the gateway's request rate. A missing token is
not a guess and costs nothing.

Every failure is counted on ``/metrics`` (``sessiongate_failed_auth_total``); the
audit gets them in bulk: one ``auth-failed`` line per address per minute at most,
with the count, so a flood of guesses cannot fill the disk.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sessiongate.audit import AuditLog, Decision
from sessiongate.config import LimitsConfig
from sessiongate.errors import TooManyRequestsError, UnauthorizedError
from sessiongate.metrics import GatewayMetrics
from sessiongate.server.auth import check_token

__all__ = ["AUDIT_WINDOW_SECONDS", "FailedAuthLimiter", "client_address"]

AUDIT_WINDOW_SECONDS = 60.0
MAX_TRACKED_ADDRESSES = 10_000  # the least recently failing address is forgotten first


def client_address(client: tuple[str, int] | Any | None) -> str:
    """The address part of an ASGI scope's client (``unknown`` when the server has none)."""
    return str(client[0]) if client else "unknown"


@dataclass(slots=True)
class _Address:
    level: float
    then: float
    unaudited: int = 0
    audited_at: float = 0.0
    surfaces: set[str] = field(default_factory=set)


class FailedAuthLimiter:
    """Failed authentications per client address (see the module docstring)."""

    def __init__(self, limits: LimitsConfig) -> None:
        self.burst = float(limits.failed_auth_burst_per_client)
        self.rate = limits.failed_auth_per_minute_per_client / 60.0
        self.metrics: GatewayMetrics | None = None  # set once the gateway is open
        self.audit: AuditLog | None = None
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    def _refilled(self, client: str, now: float) -> _Address | None:
        entry = self._addresses.get(client)
        if entry is not None:
            entry.level = min(self.burst, entry.level + (now - entry.then) * self.rate)
            entry.then = now
        return entry

    def refuse_if_locked(self, client: str, surface: str) -> None:
        """TooManyRequestsError while `client` has no failures left (nothing is checked)."""
        entry = self._refilled(client, time.monotonic())
        if entry is None or entry.level >= 1.0:
            return
        if self.metrics is not None:
            self.metrics.auth_failed(surface, "locked")
        raise TooManyRequestsError(
            "too many failed authentications from this address; wait before trying again",
            details={
                "reason": "failed-auth",
                "retryAfterSeconds": round((1.0 - entry.level) / self.rate, 1),
                "setting": "gateway.limits.failedAuthPerMinutePerClient",
            },
        )

    def failed(self, client: str, surface: str) -> None:
        """Count one wrong token or sign-in from `client`."""
        now = time.monotonic()
        entry = self._refilled(client, now)
        if entry is None:
            entry = self._addresses[client] = _Address(self.burst, now)
            if len(self._addresses) > MAX_TRACKED_ADDRESSES:
                self._addresses.popitem(last=False)
        self._addresses.move_to_end(client)
        entry.level = max(0.0, entry.level - 1.0)
        entry.unaudited += 1
        entry.surfaces.add(surface)
        if self.metrics is not None:
            self.metrics.auth_failed(surface, "denied")
        if now - entry.audited_at >= AUDIT_WINDOW_SECONDS or entry.audited_at == 0.0:
            self._audit(client, entry, now)

    def _audit(self, client: str, entry: _Address, now: float) -> None:
        if self.audit is not None:
            self.audit.queue(
                {
                    "decision": Decision.AUTH_FAILED.value,
                    "client": client,
                    "failures": entry.unaudited,
                    "surfaces": sorted(entry.surfaces),
                    "windowSeconds": AUDIT_WINDOW_SECONDS,
                }
            )
        entry.unaudited, entry.audited_at = 0, now
        entry.surfaces.clear()

    def flush(self) -> None:
        """Audit the failures counted since each address's last line (at shutdown)."""
        now = time.monotonic()
        for client, entry in self._addresses.items():
            if entry.unaudited:
                self._audit(client, entry, now)

    def check(self, client: str, surface: str, expected: str, presented: str | None) -> None:
        """`check_token`, paced: refused unchecked while locked; a wrong token counts."""
        self.refuse_if_locked(client, surface)
        try:
            check_token(expected, presented)
        except UnauthorizedError:
            if presented:
                self.failed(client, surface)
            raise
