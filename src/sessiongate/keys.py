"""Session keys: parsing, canonical form and lints.

Parsing is pure and total: every string gives a `SessionKey` or raises
`InvalidSessionKeyError` naming the segment that is wrong. The grammar is the
OpenClaw-compatible one (stored lower-cased)::

    main                                              (the default agent's main)
    agent:<id>:main
    agent:<id>:direct:<peer>                          dmScope per-peer
    agent:<id>:<channel>:direct:<peer>                dmScope per-channel-peer
    agent:<id>:<channel>:<account>:direct:<peer>      dmScope per-account-channel-peer
    agent:<id>:<channel>:group:<gid>[:thread:<tid>]
    agent:<id>:<channel>:channel:<cid>[:thread:<tid>]
    agent:<id>:subagent:<uuid>
    agent:<id>:cron:<job>
    agent:<id>:a2a:<context-id>                       an A2A context (`server/a2a.py`)
    hook:<uuid>                                       (runs on the default agent)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

from sessiongate.errors import InvalidSessionKeyError

__all__ = [
    "AGENT_KEY_PREFIX",
    "HOOK_KEY_PREFIX",
    "MAX_KEY_LENGTH",
    "DmScope",
    "SessionKey",
    "SessionKind",
    "a2a_context_key",
    "agent_key_prefix",
    "agent_of_key",
    "canonical_session_key",
    "direct_key_for",
    "group_key",
    "key_segments",
    "main_key",
    "parse_session_key",
    "subagent_key",
]

MAX_KEY_LENGTH = 512
AGENT_KEY_PREFIX = "agent:"
HOOK_KEY_PREFIX = "hook:"
SEPARATOR = ":"

AGENT_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
CHANNEL_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
SEGMENT_RE = re.compile(r"[a-z0-9_.+@=#-]{1,256}")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RESERVED = frozenset({"main", "direct", "group", "channel", "thread", "subagent", "cron", "a2a"})
SIMPLE_KINDS = ("main", "direct", "subagent", "cron", "a2a")  # agent:<id>:<kind>[:<one segment>]


class SessionKind(StrEnum):
    MAIN = "main"
    DIRECT = "direct"
    GROUP = "group"
    CHANNEL = "channel"
    SUBAGENT = "subagent"
    CRON = "cron"
    A2A = "a2a"
    HOOK = "hook"


class DmScope(StrEnum):
    MAIN = "main"
    PER_PEER = "per-peer"
    PER_CHANNEL_PEER = "per-channel-peer"
    PER_ACCOUNT_CHANNEL_PEER = "per-account-channel-peer"


@dataclass(frozen=True, slots=True)
class SessionKey:
    """A parsed session key. `agent_id` is None only for `hook:` keys."""

    text: str
    kind: SessionKind
    agent_id: str | None
    channel: str | None = None
    account: str | None = None
    peer: str | None = None
    thread: str | None = None
    ident: str | None = None

    @property
    def dm_scope(self) -> DmScope | None:
        """The dmScope that produces this key's shape, for direct keys."""
        if self.kind is not SessionKind.DIRECT:
            return None
        if self.channel is None:
            return DmScope.PER_PEER
        if self.account is None:
            return DmScope.PER_CHANNEL_PEER
        return DmScope.PER_ACCOUNT_CHANNEL_PEER

    def __str__(self) -> str:
        return self.text


def _fail(text: str, segment: int | None, reason: str) -> NoReturn:
    number = segment + 1 if segment is not None else None  # counted from 1, in text and details
    where = f"segment {number}" if number is not None else "key"
    raise InvalidSessionKeyError(
        f"invalid session key {text!r:.80}: {where}: {reason}",
        details={"requestedKey": text[:MAX_KEY_LENGTH], "segment": number, "reason": reason},
    )


def _check(text: str, parts: list[str], index: int, pattern: re.Pattern[str], what: str) -> str:
    value = parts[index]
    if not value:
        _fail(text, index, f"empty {what}")
    if pattern.fullmatch(value) is None:
        _fail(text, index, f"illegal character in {what} {value!r:.70}")
    return value


def _check_channel(text: str, parts: list[str], index: int) -> str:
    value = _check(text, parts, index, CHANNEL_RE, "channel")
    if value in RESERVED:
        _fail(text, index, f"{value!r} is a reserved word, not a channel name")
    return value


def _expect_count(text: str, parts: list[str], allowed: tuple[int, ...], shape: str) -> None:
    if len(parts) not in allowed:
        expected = " or ".join(str(n) for n in allowed)
        _fail(text, None, f"wrong number of segments: {shape} takes {expected}, got {len(parts)}")


def _parse_simple(text: str, parts: list[str], agent: str) -> SessionKey:
    kind = parts[2]
    if kind == "main":
        _expect_count(text, parts, (3,), "a main key")
        return SessionKey(text, SessionKind.MAIN, agent)
    _expect_count(text, parts, (4,), f"a {kind} key")
    if kind == "direct":
        peer = _check(text, parts, 3, SEGMENT_RE, "peer id")
        return SessionKey(text, SessionKind.DIRECT, agent, peer=peer)
    if kind == "subagent":
        ident = _check(text, parts, 3, UUID_RE, "subagent uuid")
        return SessionKey(text, SessionKind.SUBAGENT, agent, ident=ident)
    if kind == "a2a":
        ident = _check(text, parts, 3, SEGMENT_RE, "A2A context id")
        return SessionKey(text, SessionKind.A2A, agent, ident=ident)
    ident = _check(text, parts, 3, SEGMENT_RE, "cron job id")
    return SessionKey(text, SessionKind.CRON, agent, ident=ident)


def _parse_channel_key(text: str, parts: list[str], agent: str) -> SessionKey:
    channel = _check_channel(text, parts, 2)
    if len(parts) < 4:
        _fail(text, None, "wrong number of segments: a channel key needs a shape after the channel")
    if parts[3] == "direct":
        _expect_count(text, parts, (5,), "a per-channel direct key")
        peer = _check(text, parts, 4, SEGMENT_RE, "peer id")
        return SessionKey(text, SessionKind.DIRECT, agent, channel=channel, peer=peer)
    if parts[3] in ("group", "channel"):
        return _parse_group(text, parts, agent, channel)
    if len(parts) >= 5 and parts[4] == "direct":
        _expect_count(text, parts, (6,), "a per-account direct key")
        account = _check(text, parts, 3, SEGMENT_RE, "account id")
        peer = _check(text, parts, 5, SEGMENT_RE, "peer id")
        return SessionKey(
            text, SessionKind.DIRECT, agent, channel=channel, account=account, peer=peer
        )
    _fail(text, 3, f"unknown kind {parts[3]!r:.40}: expected direct, group or channel")


def _parse_group(text: str, parts: list[str], agent: str, channel: str) -> SessionKey:
    _expect_count(text, parts, (5, 7), f"a {parts[3]} key")
    kind = SessionKind.GROUP if parts[3] == "group" else SessionKind.CHANNEL
    ident = _check(text, parts, 4, SEGMENT_RE, f"{parts[3]} id")
    thread = None
    if len(parts) == 7:
        if parts[5] != "thread":
            _fail(text, 5, f"expected 'thread', got {parts[5]!r:.40}")
        thread = _check(text, parts, 6, SEGMENT_RE, "thread id")
    return SessionKey(text, kind, agent, channel=channel, ident=ident, thread=thread)


def _parse_agent_key(text: str, parts: list[str]) -> SessionKey:
    if len(parts) < 3:
        _fail(text, None, "wrong number of segments: 'agent:<id>:...' needs at least 3")
    agent = _check(text, parts, 1, AGENT_ID_RE, "agent id")
    body = parts[2:]
    if body[0] in SIMPLE_KINDS:
        return _parse_simple(text, parts, agent)
    if not body[0]:
        _fail(text, 2, "empty kind")
    return _parse_channel_key(text, [*parts[:2], *body], agent)


def parse_session_key(reference: str, default_agent_id: str = "main") -> SessionKey:
    """Parse and canonicalise `reference`; raise InvalidSessionKeyError if it is not a key."""
    if not isinstance(reference, str):
        raise InvalidSessionKeyError(
            f"session key must be a string, got {type(reference).__name__}",
            details={"requestedKey": repr(reference)[:MAX_KEY_LENGTH], "segment": None},
        )
    if len(reference) > MAX_KEY_LENGTH:
        _fail(reference, None, f"over {MAX_KEY_LENGTH} characters ({len(reference)})")
    text = reference.strip().lower()
    if not text:
        _fail(reference, None, "empty key")
    if text == "main":
        return SessionKey(main_key(default_agent_id), SessionKind.MAIN, default_agent_id)
    parts = key_segments(text)
    if parts[0] == "agent":
        return _parse_agent_key(text, parts)
    if parts[0] == "hook":
        _expect_count(text, parts, (2,), "a hook key")
        ident = _check(text, parts, 1, UUID_RE, "hook uuid")
        return SessionKey(text, SessionKind.HOOK, None, ident=ident)
    _fail(text, 0, f"unknown kind {parts[0]!r:.40}: expected 'agent', 'hook' or 'main'")


def canonical_session_key(reference: str, default_agent_id: str = "main") -> str:
    """The canonical text of `reference` (lower-cased, trimmed, bare main expanded)."""
    return parse_session_key(reference, default_agent_id).text


def agent_key_prefix(agent_id: str) -> str:
    """What every ``agent:<id>:…`` key of `agent_id` starts with."""
    return f"{AGENT_KEY_PREFIX}{agent_id}{SEPARATOR}"


def main_key(agent_id: str) -> str:
    """The main session key of `agent_id`."""
    return f"{agent_key_prefix(agent_id)}main"


def subagent_key(agent_id: str, ident: str) -> str:
    """The key of a child session `sessions_spawn` creates."""
    return f"{agent_key_prefix(agent_id)}subagent:{ident}"


def a2a_context_key(agent_id: str, context_id: str) -> str:
    """The key of an A2A context of `agent_id` (a ``contextId`` that is not itself a key)."""
    return f"{agent_key_prefix(agent_id)}a2a{SEPARATOR}{context_id}"


def group_key(agent_id: str, channel: str, group_id: str) -> str:
    """The key of a group conversation on `channel`."""
    return f"{agent_key_prefix(agent_id)}{channel}:group:{group_id}"


def key_segments(text: str) -> list[str]:
    """The colon-separated segments of a key-shaped text (no validation)."""
    return text.split(SEPARATOR)


def agent_of_key(text: str) -> str | None:
    """The agent id segment of an ``agent:<id>:…`` text, without validating the rest."""
    parts = key_segments(text)
    return parts[1] if len(parts) > 2 and parts[0] == AGENT_KEY_PREFIX[:-1] else None


def direct_key_for(
    agent_id: str, scope: DmScope, peer: str, channel: str, account: str | None
) -> str:
    """The key a direct message from `peer` lands in under `scope`."""
    if scope is DmScope.MAIN:
        return main_key(agent_id)
    if scope is DmScope.PER_PEER:
        return f"{agent_key_prefix(agent_id)}direct:{peer}"
    if scope is DmScope.PER_CHANNEL_PEER:
        return f"{agent_key_prefix(agent_id)}{channel}:direct:{peer}"
    return f"{agent_key_prefix(agent_id)}{channel}:{account or 'default'}:direct:{peer}"
