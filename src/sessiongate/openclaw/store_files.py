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
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sessiongate.errors import InvalidSessionKeyError
from sessiongate.keys import canonical_session_key
from sessiongate.store.values import readable_timestamp

__all__ = [
    "OUTSIDE",
    "OpenClawFileError",
    "TranscriptMessage",
    "Where",
    "agent_dirs",
    "epoch_seconds",
    "find_orphans",
    "inside",
    "is_sidecar",
    "load_json",
    "locate_transcript",
    "read_index",
    "read_transcript",
]

INDEX_NAME = "sessions.json"
OUTSIDE = (
    "outside the source folder (by '..', an absolute path or a symlink): not read; "
    "pass --allow-outside FOLDER to allow a folder"
)
MAX_INT_DIGITS = 19  # beyond int64: no store holds it as a number
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


class _OutOfRange(ValueError):
    """A number no store (or float) holds: ``NaN``, ``Infinity``, ``1e999``, a huge integer."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange(f"the number {text[:24]} is out of range")
    return value


def _bounded(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _OutOfRange(f"an integer of {len(text)} digits is out of range")
    return int(text)


def _constant(text: str) -> Any:
    raise _OutOfRange(f"{text} is not a number sessiongate stores")


def load_json(data: bytes, path: Path, line: int | None) -> Any:
    """Parse one JSON document of the OpenClaw store; OpenClawFileError (with `path` and
    `line`) for anything that is not JSON every later step can hold: invalid JSON or
    UTF-8, numbers out of range, nesting deeper than the parser's recursion."""
    try:
        return json.loads(data, parse_float=_finite, parse_int=_bounded, parse_constant=_constant)
    except RecursionError:
        raise OpenClawFileError(path, line, "nested too deep to read") from None
    except _OutOfRange as exc:
        raise OpenClawFileError(path, line, str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        at = line if line is not None else getattr(exc, "lineno", None)
        raise OpenClawFileError(path, at, f"not valid JSON ({_why(exc)})") from None


def read_index(sessions_dir: Path) -> dict[str, Any]:
    """The entries of ``sessions.json`` by key, as written (keys not yet canonical)."""
    path = sessions_dir / INDEX_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise OpenClawFileError(path, None, "missing: this agent has no session index") from None
    except OSError as exc:
        raise OpenClawFileError(path, None, f"unreadable ({exc.strerror})") from None
    data = load_json(raw, path, None)
    if not isinstance(data, dict):
        raise OpenClawFileError(path, 1, "not a session index: expected a JSON object")
    return data


def _why(exc: Exception) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path`, every symlink followed, is within one of `roots` (resolved already)."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(root) for root in roots)


def locate_transcript(sessions_dir: Path, entry: dict[str, Any], roots: Sequence[Path]) -> Path:
    """The transcript an index entry points to; OpenClawFileError when it is nowhere, or
    when it is (through ``..``, an absolute path or a symlink) outside every folder of
    `roots` (the source folder, and what ``--allow-outside`` names).

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
    outside = None
    for candidate in candidates:
        if candidate.is_file():
            if inside(candidate, roots):
                return candidate
            outside = outside or candidate
    if outside is not None:
        raise OpenClawFileError(outside, None, OUTSIDE)
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
    """The conversation messages of one transcript, in file order, read line by line (only
    the messages are held, never the whole file).

    A line that is not JSON (or a last line cut short), a number or time out of range, text
    that is not text: OpenClawFileError with its line number. A damaged transcript is
    skipped whole, never half-imported.
    """
    try:
        with path.open("rb") as file:
            return _read_messages(path, file, channel)
    except OSError as exc:
        raise OpenClawFileError(path, None, f"unreadable ({exc.strerror})") from None


def _read_messages(path: Path, file: BinaryIO, channel: str | None) -> list[TranscriptMessage]:
    session_id: str | None = None
    messages: list[TranscriptMessage] = []
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        entry = _entry(path, number, line, last=not line.endswith(b"\n"))
        if session_id is None:
            if entry.get("type") != "session":
                raise OpenClawFileError(path, 1, "not an OpenClaw transcript (no session header)")
            session_id = str(entry.get("id", path.stem))
            continue
        message = _message(entry, session_id, channel, (path, number))
        if message is not None:
            messages.append(message)
    if session_id is None:
        raise OpenClawFileError(path, 1, "not an OpenClaw transcript (no session header)")
    return messages


def _entry(path: Path, number: int, line: bytes, last: bool) -> dict[str, Any]:
    try:
        entry = load_json(line, path, number)
    except OpenClawFileError:
        if last and not _parses_as_json(line):
            raise OpenClawFileError(path, number, "truncated: the last line is cut short") from None
        raise
    if not isinstance(entry, dict):
        raise OpenClawFileError(path, number, "not a transcript entry: expected a JSON object")
    return entry


def _parses_as_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


Where = tuple[Path, int | None]  # a file, and the line in it when known


def _message(
    entry: dict[str, Any], session_id: str, channel: str | None, where: Where
) -> TranscriptMessage | None:
    body = entry.get("message")
    if entry.get("type") != "message" or not isinstance(body, dict):
        return None
    role = ROLES.get(str(body.get("role")))
    if role is None:
        return None
    text, omitted = _text(body.get("content"), where)
    origin: dict[str, Any] = {"sessionId": session_id, "entryId": entry.get("id")}
    if omitted:
        origin["omitted"] = omitted
    meta: dict[str, Any] = {"openclaw": origin}
    if channel:
        meta["channel"] = channel
    meta.update(_provenance(body.get("provenance")))
    at = _time(body.get("timestamp"), entry.get("timestamp"), where)
    return TranscriptMessage(role, text, at, meta)


def _text(content: Any, where: Where) -> tuple[str, list[str]]:
    """The text parts of a message joined by newlines, and the types of the parts left out."""
    if isinstance(content, str):
        return content, []
    if content is None:
        return "", []
    if not isinstance(content, list):
        raise OpenClawFileError(*where, f"message content is a {_kind(content)}, not text")
    texts: list[str] = []
    omitted: list[str] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            text = part.get("text", "")
            if not isinstance(text, str):
                raise OpenClawFileError(*where, f"a text part holds a {_kind(text)}, not text")
            texts.append(text)
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


def _kind(value: Any) -> str:
    return {dict: "JSON object", list: "JSON array", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _time(millis: Any, iso_text: Any, where: Where) -> float | None:
    """Seconds since the epoch from the message's ms timestamp, else the entry's ISO one;
    OpenClawFileError for a time no store can hold (``1e300``, a year beyond 9999)."""
    if isinstance(millis, int | float) and not isinstance(millis, bool) and millis > 0:
        return _readable(millis / 1000, millis, where)
    if isinstance(iso_text, str):
        try:
            stamp = datetime.fromisoformat(iso_text).timestamp()
        except (ValueError, OverflowError):
            return None
        return _readable(stamp, iso_text, where)
    return None


def _readable(seconds: float, raw: Any, where: Where) -> float:
    readable = readable_timestamp(seconds)
    if readable is None:
        shown = raw if isinstance(raw, str) else f"{raw:.6g}"
        raise OpenClawFileError(*where, f"timestamp {str(shown)[:40]} is not a time "
                                "sessiongate can store (1970 to 9999)")  # fmt: skip
    return readable


def epoch_seconds(value: Any, where: Where | None = None) -> float | None:
    """An index entry's epoch-milliseconds field in seconds (None when absent or odd).

    A time no store can hold raises OpenClawFileError naming `where`; without `where`
    (only ordering entries) it is None like any other odd value."""
    try:
        return _time(value, None, where or (Path(INDEX_NAME), None))
    except OpenClawFileError:
        if where is None:
            return None
        raise
