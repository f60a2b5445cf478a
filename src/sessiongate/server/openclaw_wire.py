"""OpenClaw's gateway protocol v3 (operator subset): its parameters and its shapes.

Pure translation, no I/O: OpenClaw's method parameters as argument models, and
sessiongate's sessions, messages, run events and errors as the frames OpenClaw's
CLI reads (facts from a recording of OpenClaw 2026.5.7's CLI).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import Field

from sessiongate.errors import InvalidRequestError, SessionGateError, SessionNotFoundError
from sessiongate.fields import (
    MAX_LIST_LIMIT,
    ActiveMinutes,
    HistoryLimit,
    IdempotencyKey,
    Label,
    MessageText,
    Reason,
    SessionRef,
)
from sessiongate.keys import main_key
from sessiongate.openclaw.ids import session_id
from sessiongate.runtime.runs import RunEvent
from sessiongate.tools.base import ToolArgs

__all__ = [
    "ADMIN",
    "PROTOCOL",
    "READ",
    "WRITE",
    "AgentParams",
    "ChatHistoryParams",
    "ChatSendParams",
    "ConnectParams",
    "DeleteParams",
    "ListParams",
    "PatchParams",
    "ResetParams",
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
    ADMIN: frozenset({READ, WRITE, ADMIN}),
}
# The only keys OpenClaw's CLI accepts in an error object: any other key makes it drop the
# answer and report a timeout instead.
ERROR_KEYS = ("code", "message", "details", "retryable", "retryAfterMs")


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
    # OpenClaw's callers ask for as many as they like (its test client: 100000); under
    # gateway.compat.openclaw a limit over the maximum is clamped and a cursor given
    limit: int = Field(default=50, ge=1)
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
    session_id: str | None = Field(default=None, max_length=200)  # `openclaw agent --session-id`
    to: str | None = Field(default=None, max_length=64)  # `openclaw agent --to +65…`
    channel: str | None = Field(default=None, max_length=64)
    account_id: str | None = Field(default=None, max_length=128)
    deliver: bool = False
    timeout: float = Field(default=600, gt=0, le=3600)  # seconds, as `openclaw agent --timeout`
    idempotency_key: IdempotencyKey | None = None

    def target(self) -> str:
        """The session addressed without a lookup: the key, else the agent's main, else the
        default main (`sessionId` and `to` are resolved by the gateway first)."""
        if self.session_key is not None:
            return self.session_key
        return main_key(self.agent_id) if self.agent_id else "main"


class DeleteParams(ToolArgs):
    """`sessions.delete`: the transcript goes with the session (a tombstone stays)."""

    key: SessionRef
    delete_transcript: bool = True
    force: bool = False  # sessiongate's: an agent's main session
    reason: Reason | None = None


class ResetParams(ToolArgs):
    key: SessionRef
    reason: str | None = Field(default=None, max_length=500)  # OpenClaw's: "new" or "reset"


class PatchParams(ToolArgs):
    """`sessions.patch`: sessiongate keeps only the label of OpenClaw's session fields."""

    key: SessionRef
    label: Label | None = None


def error_object(error: SessionGateError) -> dict[str, Any]:
    """An error as OpenClaw's CLI takes it: only its keys, a message that stands alone."""
    wire = error.to_wire()["error"]
    wire["message"] = _standalone_message(error)
    return {key: wire[key] for key in ERROR_KEYS if key in wire}


def _standalone_message(error: SessionGateError) -> str:
    """The CLI shows a person only the message: for a refusal, the key, why, and what to use."""
    if not isinstance(error, SessionNotFoundError):
        return error.message
    details = error.details
    requested = (details.get("requestedKey") or details.get("requestedLabel")
                 or details.get("requestedSessionId"))  # fmt: skip
    message = f"No session found: {requested} ({error.message})"
    suggestions = error.details.get("suggestions") or []
    if suggestions:
        message += f"; did you mean {' or '.join(suggestions)}?"
    return message


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


def list_limit(requested: int, compat: bool) -> int:
    """A `sessions.list` limit: over the maximum, clamped under gateway.compat.openclaw (the
    answer's nextCursor pages on), else refused as for every other caller."""
    if requested <= MAX_LIST_LIMIT:
        return requested
    if compat:
        return MAX_LIST_LIMIT
    raise InvalidRequestError(
        f"sessions.list: limit {requested} is over {MAX_LIST_LIMIT}; page with nextCursor "
        "(or set gateway.compat.openclaw: true to have it clamped)",
        details={"argument": "limit", "problems": [f"limit: at most {MAX_LIST_LIMIT}"]},
    )
