"""OpenClaw's gateway protocol v3 (operator subset): its parameters and its shapes.

Pure translation, no I/O: OpenClaw's method parameters as argument models, and
sessiongate's sessions, messages, run events and errors as the frames OpenClaw's
CLI reads (facts from a recording of OpenClaw 2026.5.7's CLI).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import Field

from sessiongate.errors import SessionGateError, SessionNotFoundError
from sessiongate.fields import (
    ActiveMinutes,
    HistoryLimit,
    IdempotencyKey,
    ListLimit,
    MessageText,
    SessionRef,
)
from sessiongate.keys import main_key
from sessiongate.runtime.runs import RunEvent
from sessiongate.tools.base import ToolArgs

__all__ = [
    "PROTOCOL",
    "READ",
    "WRITE",
    "AgentParams",
    "ChatHistoryParams",
    "ChatSendParams",
    "ConnectParams",
    "ListParams",
    "ResolveParams",
    "RunFrames",
    "error_object",
    "history_message",
    "session_id",
    "session_row",
]

PROTOCOL = 3
READ = "operator.read"
WRITE = "operator.write"
ADMIN = "operator.admin"
# What each scope a client asks for lets it do (write and admin include read, as in OpenClaw).
SCOPE_GRANTS: dict[str, frozenset[str]] = {
    READ: frozenset({READ}),
    WRITE: frozenset({READ, WRITE}),
    ADMIN: frozenset({READ, WRITE}),
}
# The only keys OpenClaw's CLI accepts in an error object: any other key makes it drop the
# answer and report a timeout instead.
ERROR_KEYS = ("code", "message", "details", "retryable", "retryAfterMs")
SESSION_ID_NAMESPACE = uuid.UUID("0c3b6a52-7f0e-4d55-a0e1-2f5d1c9b8e44")


def now_ms() -> int:
    return int(time.time() * 1000)


class ClientInfo(ToolArgs):
    model_config = {**ToolArgs.model_config, "extra": "allow"}
    id: str = "unknown"
    version: str | None = None


class AuthParams(ToolArgs):
    token: str | None = None


class ConnectParams(ToolArgs):
    """`connect`: token auth; device identity and capabilities are accepted and ignored."""

    model_config = {**ToolArgs.model_config, "extra": "ignore"}
    min_protocol: int
    max_protocol: int
    client: ClientInfo = Field(default_factory=ClientInfo)
    role: str = "operator"
    scopes: list[str] = Field(default_factory=lambda: [READ])
    auth: AuthParams = Field(default_factory=AuthParams)


class ResolveParams(ToolArgs):
    key: SessionRef


class ListParams(ToolArgs):
    limit: ListLimit = 50
    agent_id: str | None = None
    active_minutes: ActiveMinutes | None = None
    include_global: bool = False  # OpenClaw's global/unknown buckets do not exist here
    include_unknown: bool = False


class ChatHistoryParams(ToolArgs):
    session_key: SessionRef
    limit: HistoryLimit = 200


class ChatSendParams(ToolArgs):
    session_key: SessionRef
    message: MessageText
    idempotency_key: IdempotencyKey | None = None


class AgentParams(ToolArgs):
    message: MessageText
    agent_id: str | None = None
    session_key: SessionRef | None = None
    deliver: bool = False
    timeout: float = Field(default=600, gt=0, le=3600)  # seconds, as `openclaw agent --timeout`
    idempotency_key: IdempotencyKey | None = None

    def target(self) -> str:
        """The session addressed: the key, else the agent's main, else the default main."""
        if self.session_key is not None:
            return self.session_key
        return main_key(self.agent_id) if self.agent_id else "main"


def error_object(error: SessionGateError) -> dict[str, Any]:
    """An error as OpenClaw's CLI takes it: only its keys, a message that stands alone."""
    wire = error.to_wire()["error"]
    wire["message"] = _standalone_message(error)
    return {key: wire[key] for key in ERROR_KEYS if key in wire}


def _standalone_message(error: SessionGateError) -> str:
    """The CLI shows a person only the message: for a refusal, the key, why, and what to use."""
    if not isinstance(error, SessionNotFoundError):
        return error.message
    requested = error.details.get("requestedKey") or error.details.get("requestedLabel")
    message = f"No session found: {requested} ({error.message})"
    suggestions = error.details.get("suggestions") or []
    if suggestions:
        message += f"; did you mean {' or '.join(suggestions)}?"
    return message


def session_id(key: str) -> str:
    """A stable OpenClaw-shaped session id for a key (sessiongate keys sessions by key)."""
    return str(uuid.uuid5(SESSION_ID_NAMESPACE, key))


def _ms(iso: str) -> int:
    """Epoch milliseconds (OpenClaw's timestamps) of a wire ISO 8601 time."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def session_row(wire: dict[str, Any]) -> dict[str, Any]:
    """A `sessions_list` row as an OpenClaw `sessions.list` row."""
    return {
        "key": wire["key"],
        "kind": "group" if wire["kind"] in ("group", "channel") else "direct",
        "label": wire["label"],
        "displayName": wire["label"] or wire["key"],
        "updatedAt": _ms(wire["updatedAt"]),
        "sessionId": session_id(wire["key"]),
        "agentId": wire["agentId"],
        "status": wire["status"],
        "origin": wire["origin"],
    }


def history_message(wire: dict[str, Any]) -> dict[str, Any]:
    """A `sessions_history` message as an OpenClaw `chat.history` message."""
    return {
        "role": wire["role"],
        "content": [{"type": "text", "text": wire["content"]}],
        "timestamp": _ms(wire["createdAt"]),
        "__openclaw": {"seq": wire["seq"], "runId": wire["runId"]},
    }


@dataclass(slots=True)
class RunFrames:
    """Turns one run's events into OpenClaw's `agent` and `chat` events (with the run's own
    sequence numbers and the reply text so far)."""

    run_id: str  # as the client knows it: its idempotency key, when it gave one
    session_key: str
    started: float = field(default_factory=time.monotonic)
    seq: int = 0
    text: str = ""

    def frames(self, event: RunEvent) -> list[tuple[str, dict[str, Any]]]:
        """The events to send for one run event (none for events OpenClaw has no name for)."""
        name = event["event"]
        if name == "run.started":
            return [self._agent("lifecycle", {"phase": "start", "startedAt": now_ms()})]
        if name == "run.delta":
            self.text += event["delta"]
            data = {"text": self.text, "delta": event["delta"]}
            return [self._agent("assistant", data), self._chat("delta")]
        if name == "run.completed":
            self.text = event["reply"]
            end = {"phase": "end", "endedAt": now_ms()}
            return [self._agent("lifecycle", end), self._chat("final")]
        if name == "run.failed":
            message = event["error"].get("message", event["error"]["code"])
            error = {"phase": "error", "error": message, "endedAt": now_ms()}
            return [self._agent("lifecycle", error), self._chat("error", errorMessage=message)]
        return []

    def _next(self) -> dict[str, Any]:
        self.seq += 1
        return {"runId": self.run_id, "sessionKey": self.session_key, "seq": self.seq}

    def _agent(self, stream: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "agent", {**self._next(), "stream": stream, "data": data, "ts": now_ms()}

    def _chat(self, state: str, **extra: Any) -> tuple[str, dict[str, Any]]:
        payload = {**self._next(), "state": state, **extra}
        if state != "error":
            text = [{"type": "text", "text": self.text}]
            payload["message"] = {"role": "assistant", "content": text, "timestamp": now_ms()}
        return "chat", payload

    def final(self, reply: str | None, prompt: str) -> dict[str, Any]:
        """The `agent` method's final answer for a finished run."""
        meta = {
            "durationMs": int((time.monotonic() - self.started) * 1000),
            "aborted": False,
            "finalPromptText": prompt,
            "finalAssistantVisibleText": reply,
            "finalAssistantRawText": reply,
            "stopReason": "stop",
            "completion": {"stopReason": "stop", "finishReason": "stop"},
        }
        return {
            "runId": self.run_id,
            "status": "ok",
            "summary": "completed",
            "result": {
                "payloads": [{"text": reply, "mediaUrl": None}],
                "meta": meta,
                "deliverySucceeded": False,  # nothing is delivered to channels here
            },
        }
