"""Inbound channel messages: the session key comes from the message's own origin.

A direct message lands where `session.dmScope` says; a group message in
``agent:<id>:<channel>:group:<gid>``. Such a session is created whatever
`createOnMiss` says — the message carries its origin, so it cannot be a typo.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from sessiongate.config import SessionGateConfig
from sessiongate.errors import InvalidRequestError
from sessiongate.fields import MessageText, WaitSeconds
from sessiongate.keys import DmScope, direct_key_for, group_key
from sessiongate.resolver import Caller, Resolver
from sessiongate.runtime.runs import RunManager
from sessiongate.store.base import Origin, now
from sessiongate.tools.base import ToolArgs, validate_args

__all__ = ["InboundMessage", "receive_inbound", "recipient_key"]

E164 = re.compile(r"^\+?[1-9][0-9]{5,14}$")


class Peer(ToolArgs):
    kind: Literal["direct", "group"]
    id: str = Field(min_length=1, max_length=256)


class InboundMessage(ToolArgs):
    account_id: str | None = Field(default=None, min_length=1, max_length=128)
    agent_id: str | None = None
    peer: Peer
    text: MessageText
    timeout_seconds: WaitSeconds = 30


def inbound_key(config: SessionGateConfig, channel: str, message: InboundMessage) -> str:
    """The session key an inbound message belongs to (validated by the key grammar later)."""
    agent_id = message.agent_id or config.default_agent.id
    peer = message.peer.id.strip().lower()
    if message.peer.kind == "group":
        return group_key(agent_id, channel, peer)
    scope = config.session.dm_scope
    return direct_key_for(agent_id, scope, peer, channel.strip().lower(), message.account_id)


def recipient_key(
    config: SessionGateConfig,
    agent_id: str,
    to: str,
    channel: str | None = None,
    account: str | None = None,
) -> str:
    """The key of the conversation with `to` (an E.164 number), as OpenClaw's ``agent --to``
    derives it under ``session.dmScope``: ``main`` → the agent's main session; a per-peer
    scope → the direct key (which, like any address, must exist under createOnMiss false)."""
    number = to.strip().replace(" ", "")
    if not E164.match(number):
        raise InvalidRequestError(
            f"to: {to!r:.40} is not an E.164 phone number (+ and 6 to 15 digits)",
            details={"argument": "to", "problems": ["to: expected an E.164 number"]},
        )
    scope = config.session.dm_scope
    if scope in (DmScope.PER_CHANNEL_PEER, DmScope.PER_ACCOUNT_CHANNEL_PEER) and not channel:
        raise InvalidRequestError(
            f"to: session.dmScope is {scope.value}, so a direct key names its channel: "
            "pass channel as well",
            details={"argument": "channel", "problems": ["channel: required by dmScope"]},
        )
    peer = number.removeprefix("+")
    return direct_key_for(agent_id, scope, peer, (channel or "").strip().lower(), account)


async def receive_inbound(
    resolver: Resolver, runs: RunManager, channel: str, raw: Any
) -> dict[str, Any]:
    """Store and run one inbound message; create its session if this is its first."""
    started = now()
    message = validate_args(InboundMessage, raw, f"inbound {channel}")
    key = inbound_key(resolver.config, channel, message)
    session, created = await resolver.ensure_origin_session(
        key, Origin.INBOUND, "channel", decided_at=started
    )
    origin = {
        "channel": channel,
        "accountId": message.account_id,
        "peer": f"{channel}:{message.peer.id}",
        "peerKind": message.peer.kind,
    }
    caller = Caller(None, "channel")
    result = await runs.send(session, message.text, caller, message.timeout_seconds, origin)
    return {**result.to_wire(), "created": created}
