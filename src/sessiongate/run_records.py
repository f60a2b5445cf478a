"""What `sessiongate serve` records in the state folder, so the CLI finds what runs where.

One file per running gateway, ``<state dir>/run/gateway-<port>.json`` (0600):
URL, PID, config path, store, start time, version. `serve` removes it on a
clean exit; a record whose process is gone (a crash, kill -9) is stale and is
reported and removed by the next reader.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessiongate.paths import state_dir
from sessiongate.private_files import make_private_dir
from sessiongate.wire_fields import wire_fields

__all__ = ["RunRecord", "describe_store", "pid_alive", "read_records", "write_record"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One gateway process as `serve` recorded it."""

    url: str
    pid: int
    config_path: str | None
    store: str
    started_at: str
    version: str
    path: Path

    def to_wire(self) -> dict[str, Any]:
        """The record as written to disk (camelCase, no file path)."""
        return wire_fields(self, ("path",))


def records_dir() -> Path:
    """The folder of run records in the state dir."""
    return state_dir() / "run"


def describe_store(storage_url: str) -> str:
    """A store URL fit to print and compare: no password, SQLite paths made absolute."""
    if storage_url.startswith("sqlite:///"):
        raw = storage_url.removeprefix("sqlite:///")
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    scheme, sep, rest = storage_url.partition("://")
    credentials, at, host = rest.rpartition("@")  # the last @: a password may hold one
    if at and ":" in credentials:
        rest = f"{credentials.split(':', 1)[0]}:***@{host}"
    return f"{scheme}{sep}{rest}"


def write_record(url: str, config_path: str | None, storage_url: str) -> RunRecord:
    """Record this process as the gateway serving `url` (file mode 0600)."""
    from sessiongate import __version__

    port = url.rsplit(":", 1)[-1]
    path = records_dir() / f"gateway-{port}.json"
    make_private_dir(path.parent)
    record = RunRecord(
        url=url,
        pid=os.getpid(),
        config_path=config_path,
        store=describe_store(storage_url),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        version=__version__,
        path=path,
    )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(record.to_wire(), file)
    return record


def remove_record(record: RunRecord) -> None:
    """Remove `record` if it is still this process's (a newer gateway may own the port now)."""
    current = _read(record.path)
    if current is not None and current.pid == record.pid:
        with contextlib.suppress(FileNotFoundError):
            record.path.unlink()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False  # no /proc (macOS): trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def _read(path: Path) -> RunRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunRecord(
            url=str(data["url"]),
            pid=int(data["pid"]),
            config_path=data.get("configPath"),
            store=str(data["store"]),
            started_at=str(data["startedAt"]),
            version=str(data.get("version", "")),
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_records() -> tuple[list[RunRecord], list[RunRecord]]:
    """(live, stale) records; stale ones (their process is gone) are removed."""
    live: list[RunRecord] = []
    stale: list[RunRecord] = []
    for path in sorted(records_dir().glob("gateway-*.json")):
        record = _read(path)
        if record is None:
            continue
        if pid_alive(record.pid):
            live.append(record)
        else:
            stale.append(record)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return live, stale
