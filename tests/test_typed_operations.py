"""The gateway's typed operations: shared argument models in, frozen outcomes out.

`invoke(name, raw)` is validation plus the same operation; a streaming send collects
its run's events from before the run is queued (nothing depends on when the surface
next awaits); the moved-session retry lives in the resolver.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from sessiongate.config import SessionGateConfig
from sessiongate.gateway import Gateway
from sessiongate.outcomes import SendOutcome
from sessiongate.resolver import Caller
from sessiongate.runtime.runs import RunEvent, RunStream
from sessiongate.store import SessionStore
from sessiongate.tools.args import HistoryArgs, ListArgs, SendArgs, SessionArgs, SpawnArgs

ConfigFactory = Callable[..., SessionGateConfig]
OPERATOR = Caller(None, "test")


@pytest.fixture
async def gateway(store: SessionStore, config_factory: ConfigFactory) -> Gateway:
    opened = Gateway(config_factory(), store)
    await opened.resolver.ensure_startup_sessions()
    return opened


async def test_operations_answer_frozen_outcomes_with_one_wire_form(gateway: Gateway) -> None:
    sent = await gateway.send(SendArgs(session_key="main", message="hi"), OPERATOR)
    assert isinstance(sent, SendOutcome)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sent.status = "error"  # type: ignore[misc]
    assert sent.to_wire() == {
        "status": "ok",
        "runId": sent.run_id,
        "sessionKey": "agent:atlas:main",
        "reply": "echo: hi",
    }
    spawned = await gateway.spawn(SpawnArgs(agent_id="peggy", task="t"), OPERATOR)
    assert spawned.to_wire()["childSessionKey"].startswith("agent:peggy:subagent:")
    listing = await gateway.list_sessions(ListArgs(agent_id="atlas"), OPERATOR)
    assert [s.key for s in listing.sessions] == ["agent:atlas:main"]
    history = await gateway.history(HistoryArgs(session_key="MAIN"), OPERATOR)
    assert [m.content for m in history.messages] == ["hi", "echo: hi"]
    shown = await gateway.show(SessionArgs(session_key=" Main "), OPERATOR)
    assert shown.to_wire()["key"] == "agent:atlas:main"
    assert shown.to_wire()["requestedKey"] == " Main "
    await gateway.runs.close(1)
    await gateway.http.aclose()


async def test_invoke_is_validation_plus_the_same_operation(gateway: Gateway) -> None:
    raw = {"sessionKey": "agent:atlas:main", "message": "hi", "timeoutSeconds": 5}
    by_invoke = await gateway.invoke("sessions_send", raw, OPERATOR)
    typed = await gateway.send(SendArgs.model_validate(raw), OPERATOR)
    assert by_invoke.keys() == typed.to_wire().keys()
    assert (by_invoke["status"], by_invoke["reply"]) == (typed.status, typed.reply)
    await gateway.runs.close(1)
    await gateway.http.aclose()


async def test_a_streaming_send_misses_no_event_of_its_run(gateway: Gateway) -> None:
    """The send waits for its run to finish before the stream is followed at all: every
    event is there all the same, because the send subscribed before queueing the run."""
    seen: list[RunEvent] = []

    async def emit(event: RunEvent) -> None:
        seen.append(event)

    args = SendArgs(session_key="main", message="hi", timeout_seconds=5)
    with RunStream() as stream:
        finished = await gateway.send(args, OPERATOR, stream)
        assert finished.status == "ok"
        outcome = await stream.follow(finished, emit, 5)
    assert [e["event"] for e in seen] == ["run.started", "run.delta", "run.completed"]
    assert (outcome.status, outcome.reply) == ("ok", "echo: hi")
    assert gateway.runs._listeners == {}  # leaving the stream unsubscribed
    await gateway.runs.close(1)
    await gateway.http.aclose()
