"""Append-only JSONL audit of refused, warned and created-on-miss addresses.

A failure to write the audit never fails the user's request: it is logged and
counted (``sessiongate_audit_write_failures``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import structlog

from sessiongate.metrics import GatewayMetrics
from sessiongate.store.base import iso, now

__all__ = ["AuditLog"]

log = structlog.get_logger("sessiongate.audit")


class AuditLog:
    """One JSON object per line, rotated by size (``sessions.jsonl.1`` … ``.N``)."""

    def __init__(
        self, path: Path, metrics: GatewayMetrics, max_bytes: int = 10_485_760, backups: int = 5
    ) -> None:
        self.path = path
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = asyncio.Lock()

    async def record(self, event: dict[str, Any]) -> None:
        """Append one event; never raises."""
        line = json.dumps({"time": iso(now()), **event}, separators=(",", ":")) + "\n"
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, line)
        except OSError as exc:
            self.metrics.audit_failures.inc()
            log.error("audit write failed", path=str(self.path), error=str(exc))

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.backups and self.path.exists() and self.path.stat().st_size >= self.max_bytes:
            self._rotate()
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)

    def _rotate(self) -> None:
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def read(self) -> list[dict[str, Any]]:
        """Every event in the current file (oldest first)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
