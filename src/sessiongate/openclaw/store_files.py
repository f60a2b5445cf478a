"""Read OpenClaw's on-disk session store (2026.5.x), never writing to it.

Layout, per agent: ``agents/<id>/sessions/sessions.json`` (an object keyed by
session key; each entry names its transcript by ``sessionId`` and
``sessionFile``) and ``<sessionId>.jsonl`` transcripts, one entry per line:
a ``session`` header, then ``message`` entries (and model changes, custom
entries, compactions, which carry no conversation and are not imported).
Sidecars (``*.trajectory.jsonl``, ``*.trajectory-path.json``,
``*.checkpoint.<uuid>.jsonl``) are ignored. Everything here is synchronous
file reading; the importer runs it in a thread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sessiongate.errors import InvalidSessionKeyError
from sessiongate.keys import canonical_session_key

__all__ = [
    "OpenClawFileError",
    "TranscriptMessage",
    "agent_dirs",
    "epoch_seconds",
    "find_orphans",
    "is_sidecar",
    "locate_transcript",
    "read_index",
    "read_transcript",
]

INDEX_NAME = "sessions.json"
SIDECAR_RE = re.compile(r".*\.(trajectory\.jsonl|trajectory-path\.json|checkpoint\.[^.]+\.jsonl)$")
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "toolResult": "tool"}


class OpenClawFileError(Exception):
    """A file of the OpenClaw store that cannot be read as it should; names path and line."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        super().__init__(f"{path}{f':{line}' if line else ''}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    """One conversation message of a transcript, as sessiongate stores it."""

    role: str
    content: str
    created_at: float | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def caller(self) -> str | None:
        caller = self.meta.get("caller")
        return caller if isinstance(caller, str) else None


def agent_dirs(state_dir: Path) -> dict[str, Path]:
    """The sessions folder of every agent under `state_dir`, by agent id."""
    agents = state_dir / "agents"
    if not agents.is_dir():
        return {}
    return {d.name: d / "sessions" for d in sorted(agents.iterdir()) if (d / "sessions").is_dir()}


def read_index(sessions_dir: Path) -> dict[str, Any]:
    """The entries of ``sessions.json`` by key, as written (keys not yet canonical)."""
    path = sessions_dir / INDEX_NAME
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise OpenClawFileError(path, None, "missing: this agent has no session index") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise OpenClawFileError(path, line, f"not valid JSON ({_why(exc)})") from None
    if not isinstance(data, dict):
        raise OpenClawFileError(path, 1, "not a session index: expected a JSON object")
    return data


def _why(exc: Exception) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def locate_transcript(sessions_dir: Path, entry: dict[str, Any]) -> Path:
    """The transcript an index entry points to; OpenClawFileError when it is nowhere.

    The copy beside ``sessions.json`` wins over the recorded absolute path: a
    store copied from another machine (or a backup of a live one) records paths
    that are elsewhere, or that point back at the live store.
    """
    recorded = entry.get("sessionFile")
    session_id = entry.get("sessionId")
    candidates: list[Path] = []
    if isinstance(recorded, str) and recorded:
        candidates.append(sessions_dir / Path(recorded).name)
    if isinstance(session_id, str) and session_id:
        candidates.append(sessions_dir / f"{session_id}.jsonl")
    if isinstance(recorded, str) and recorded:
        candidates.append(Path(recorded))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if not candidates:
        raise OpenClawFileError(sessions_dir / INDEX_NAME, None, "entry names no transcript")
    raise OpenClawFileError(candidates[0], None, "missing: the transcript file does not exist")


def is_sidecar(path: Path) -> bool:
    return SIDECAR_RE.fullmatch(path.name) is not None


def find_orphans(sessions_dir: Path, referenced: set[Path]) -> tuple[list[Path], int]:
    """Transcripts no index entry points to, and how many sidecar files were ignored."""
    orphans: list[Path] = []
    sidecars = 0
    for path in sorted(sessions_dir.iterdir()):
        if is_sidecar(path):
            sidecars += 1
        elif path.suffix == ".jsonl" and path.resolve() not in referenced:
            orphans.append(path)
    return orphans, sidecars


def read_transcript(path: Path, channel: str | None) -> list[TranscriptMessage]:
    """The conversation messages of one transcript, in file order.

    A line that is not JSON (or a last line cut short) raises OpenClawFileError
    with its line number: a damaged transcript is skipped whole, never half-imported.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OpenClawFileError(path, None, f"unreadable ({exc.strerror})") from None
    lines = raw.split(b"\n")
    entries = [_entry(path, number, line, number == len(lines)) for number, line in
               enumerate(lines, 1) if line.strip()]  # fmt: skip
    if not entries or entries[0].get("type") != "session":
        raise OpenClawFileError(path, 1, "not an OpenClaw transcript (no session header)")
    session_id = str(entries[0].get("id", path.stem))
    messages = (_message(entry, session_id, channel) for entry in entries[1:])
    return [m for m in messages if m is not None]


def _entry(path: Path, number: int, line: bytes, last: bool) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if last:
            raise OpenClawFileError(path, number, "truncated: the last line is cut short") from None
        raise OpenClawFileError(path, number, f"not valid JSON ({_why(exc)})") from None
    if not isinstance(entry, dict):
        raise OpenClawFileError(path, number, "not a transcript entry: expected a JSON object")
    return entry


def _message(
    entry: dict[str, Any], session_id: str, channel: str | None
) -> TranscriptMessage | None:
    body = entry.get("message")
    if entry.get("type") != "message" or not isinstance(body, dict):
        return None
    role = ROLES.get(str(body.get("role")))
    if role is None:
        return None
    text, omitted = _text(body.get("content"))
    origin: dict[str, Any] = {"sessionId": session_id, "entryId": entry.get("id")}
    if omitted:
        origin["omitted"] = omitted
    meta: dict[str, Any] = {"openclaw": origin}
    if channel:
        meta["channel"] = channel
    meta.update(_provenance(body.get("provenance")))
    return TranscriptMessage(role, text, _time(body.get("timestamp"), entry.get("timestamp")), meta)


def _text(content: Any) -> tuple[str, list[str]]:
    """The text parts of a message joined by newlines, and the types of the parts left out."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    texts: list[str] = []
    omitted: list[str] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            omitted.append(str(part.get("type")) if isinstance(part, dict) else "?")
    return "\n".join(texts), omitted


def _provenance(provenance: Any) -> dict[str, Any]:
    """Inter-session provenance becomes the message's caller (as a native send records it)."""
    if not isinstance(provenance, dict) or provenance.get("kind") != "inter_session":
        return {}
    source = provenance.get("sourceSessionKey")
    if not isinstance(source, str) or not source:
        return {}
    tool = provenance.get("sourceTool")
    try:
        source = canonical_session_key(source)
    except InvalidSessionKeyError:
        source = source.strip().lower()
    return {"caller": source, "entryPoint": tool if isinstance(tool, str) else None}


def _time(millis: Any, iso_text: Any) -> float | None:
    """Seconds since the epoch from the message's ms timestamp, else the entry's ISO one."""
    if isinstance(millis, int | float) and not isinstance(millis, bool) and millis > 0:
        return float(millis) / 1000
    if isinstance(iso_text, str):
        try:
            return datetime.fromisoformat(iso_text).timestamp()
        except ValueError:
            return None
    return None


def epoch_seconds(value: Any) -> float | None:
    """An index entry's epoch-milliseconds field in seconds (None when absent or odd)."""
    return _time(value, None)
