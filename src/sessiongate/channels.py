"""Inbound channel messages: the session key comes from the message's own origin.

A direct message lands where `session.dmScope` says; a group message in
``agent:<id>:<channel>:group:<gid>``. Such a session is created whatever
`createOnMiss` says — the message carries its origin, so it cannot be a typo.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sessiongate.config import SessionGateConfig
from sessiongate.fields import MessageText, WaitSeconds
from sessiongate.keys import direct_key_for, group_key
from sessiongate.resolver import Caller, Resolver
from sessiongate.runtime.runs import RunManager
from sessiongate.store.base import Origin, now
from sessiongate.tools.base import ToolArgs, validate_args

__all__ = ["InboundMessage", "receive_inbound"]


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
