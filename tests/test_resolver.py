"""The one resolver, on every store: each test counts rows before and after."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sessiongate.audit import AuditLog
from sessiongate.config import SessionGateConfig
from sessiongate.errors import AgentNotFoundError, InvalidSessionKeyError, SessionNotFoundError
from sessiongate.gateway import Gateway
from sessiongate.metrics import GatewayMetrics
from sessiongate.resolver import Caller, Intent, Resolver
from sessiongate.store import SessionStore
from tests.helpers import INCIDENT_KEY

ConfigFactory = Callable[..., SessionGateConfig]
OPERATOR = Caller(None, "test")
PEGGY = Caller("agent:peggy:main", "test")


async def started(config: SessionGateConfig, store: SessionStore) -> Resolver:
    metrics = GatewayMetrics()
    resolver = Resolver(config, store, metrics, AuditLog(config.audit_path, metrics))
    await resolver.ensure_startup_sessions()
    return resolver


async def audit_events(resolver: Resolver) -> list[dict[str, object]]:
    assert resolver.audit is not None
    await resolver.audit.flush()
    return resolver.audit.read()


async def test_every_agent_main_exists_from_start_up(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    resolver = await started(config_factory(), store)
    assert await store.count_sessions() == 2
    assert await resolver.ensure_startup_sessions() == 0
    main = await store.find("agent:peggy:main")
    assert main is not None and main.provenance.origin == "startup"


async def test_strict_incident_key_is_refused_and_nothing_is_created(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    resolver = await started(config, store)
    before = await store.count_sessions()
    sent = "  Agent:Atlas:Telegram:atlas:direct:6596143250 "
    with pytest.raises(SessionNotFoundError) as info:
        await resolver.resolve(sent, PEGGY, Intent.ADDRESS)
    details = info.value.details
    assert details["requestedKey"] == sent
    assert details["canonicalKey"] == INCIDENT_KEY
    assert details["agentId"] == "atlas"
    assert details["suggestions"] == ["agent:atlas:main"]
    assert "dmScope=main" in details["lint"]
    assert details["policy"] == "gateway.sessions.createOnMiss=false"
    assert await store.count_sessions() == before
    events = await audit_events(resolver)
    assert [e["decision"] for e in events] == ["rejected"]


async def test_permissive_creates_once_with_address_provenance(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    resolver = await started(config_factory(), store)
    before = await store.count_sessions()
    results = await asyncio.gather(
        *(resolver.resolve(INCIDENT_KEY, PEGGY, Intent.ADDRESS) for _ in range(20))
    )
    assert await store.count_sessions() == before + 1
    assert sorted(r.decision for r in results).count("created") == 1
    record = await store.find(INCIDENT_KEY)
    assert record is not None
    assert record.provenance.origin == "address"
    assert record.provenance.caller_key == "agent:peggy:main"


async def test_warn_creates_and_records_a_would_have_rejected_event(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": "warn"})
    resolver = await started(config, store)
    before = await store.count_sessions()
    resolution = await resolver.resolve(INCIDENT_KEY, PEGGY)
    assert resolution.decision == "warned"
    assert resolution.warnings and "dmScope=main" in resolution.warnings[0]
    assert await store.count_sessions() == before + 1
    events = await audit_events(resolver)
    assert events[-1]["decision"] == "warned"
    assert events[-1]["canonicalKey"] == INCIDENT_KEY
    assert events[-1]["caller"]["sessionKey"] == "agent:peggy:main"


async def test_upper_case_variant_resolves_to_the_existing_session(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    resolver = await started(config_factory(gateway__sessions={"createOnMiss": False}), store)
    before = await store.count_sessions()
    for variant in ("AGENT:ATLAS:MAIN", " agent:Atlas:main", "main", "MAIN"):
        resolution = await resolver.resolve(variant, PEGGY)
        assert resolution.key == "agent:atlas:main"
        assert resolution.requested_key == variant
        assert resolution.decision == "hit"
    assert await store.count_sessions() == before


async def test_precedence_rules_over_agent_over_global_and_calls_only_tighten(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    config = config_factory(
        gateway__sessions={
            "createOnMiss": False,
            "rules": [{"match": "agent:atlas:cron:*", "createOnMiss": True}],
        },
        agents={
            "list": [
                {"id": "atlas", "default": True},
                {"id": "peggy", "sessions": {"createOnMiss": True}},
            ]
        },
    )
    resolver = await started(config, store)
    before = await store.count_sessions()
    assert (await resolver.resolve("agent:atlas:cron:nightly", OPERATOR)).decision == "created"
    assert (await resolver.resolve("agent:peggy:direct:7", OPERATOR)).decision == "created"
    with pytest.raises(SessionNotFoundError) as info:
        await resolver.resolve("agent:atlas:direct:7", OPERATOR, create_on_miss=True)
    assert info.value.details["policy"] == "gateway.sessions.createOnMiss=false"
    with pytest.raises(SessionNotFoundError) as tightened:
        await resolver.resolve("agent:peggy:direct:8", OPERATOR, create_on_miss=False)
    assert tightened.value.details["policy"] == "call createOnMiss=false"
    assert await store.count_sessions() == before + 2


async def test_read_never_creates_even_when_permissive(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    resolver = await started(config_factory(), store)
    before = await store.count_sessions()
    with pytest.raises(SessionNotFoundError):
        await resolver.resolve("agent:atlas:cron:nope", OPERATOR, Intent.READ)
    assert await store.count_sessions() == before


async def test_invalid_keys_and_unknown_agents_create_nothing(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    resolver = await started(config_factory(), store)
    before = await store.count_sessions()
    with pytest.raises(InvalidSessionKeyError):
        await resolver.resolve("agent:atlas:??", PEGGY)
    with pytest.raises(AgentNotFoundError) as info:
        await resolver.resolve("agent:zed:main", PEGGY)
    assert info.value.details["requestedKey"] == "agent:zed:main"
    assert await store.count_sessions() == before


async def test_invisible_sessions_look_exactly_like_missing_ones(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    config = config_factory(tools={"sessions": {"visibility": "self"}})
    resolver = await started(config, store)
    await resolver.resolve("agent:peggy:cron:secret", OPERATOR)
    before = await store.count_sessions()
    with pytest.raises(SessionNotFoundError) as existing:
        await resolver.resolve("agent:peggy:cron:secret", PEGGY)
    with pytest.raises(SessionNotFoundError) as missing:
        await resolver.resolve("agent:peggy:cron:secrex", PEGGY)
    with pytest.raises(SessionNotFoundError) as cross_agent:
        await resolver.resolve("agent:atlas:main", PEGGY)
    strip = {"requestedKey", "canonicalKey"}
    shown = [
        {k: v for k, v in e.value.details.items() if k not in strip} for e in (existing, missing)
    ]
    assert shown[0] == shown[1]
    assert "agent:peggy:cron:secret" not in missing.value.details["suggestions"]
    assert cross_agent.value.details["suggestions"] == []
    assert await store.count_sessions() == before


async def test_aliases_redirect(store: SessionStore, config_factory: ConfigFactory) -> None:
    resolver = await started(config_factory(), store)
    await resolver.resolve(INCIDENT_KEY, OPERATOR)
    await store.set_alias(INCIDENT_KEY, "agent:atlas:main")
    resolution = await resolver.resolve(INCIDENT_KEY.upper(), PEGGY, Intent.READ)
    assert resolution.key == "agent:atlas:main"
    fresh = await started(config_factory(), store)  # another process: nothing remembered
    assert (await fresh.resolve(INCIDENT_KEY, PEGGY)).key == "agent:atlas:main"


async def test_a_remembered_session_that_gained_an_alias_is_followed_on_send(
    store: SessionStore, config_factory: ConfigFactory
) -> None:
    gateway = Gateway(config_factory(), store)
    await gateway.resolver.ensure_startup_sessions()
    send = {"sessionKey": INCIDENT_KEY, "message": "one", "timeoutSeconds": 5}
    first = await gateway.invoke("sessions_send", send, PEGGY)
    assert first["sessionKey"] == INCIDENT_KEY  # created, and now remembered
    stale = await store.find(INCIDENT_KEY)
    assert stale is not None
    await store.set_alias(INCIDENT_KEY, "agent:atlas:main")  # e.g. doctor --fix elsewhere
    second = await gateway.invoke("sessions_send", {**send, "message": "two"}, PEGGY)
    assert second["sessionKey"] == "agent:atlas:main"
    assert second["reply"] == "echo: two"
    phantom = await store.history(INCIDENT_KEY)
    assert [m.content for m in phantom] == ["one", "echo: one"]
    # remembered from before the alias, as another process would
    gateway.resolver.known.remember(stale)
    spawned = await gateway.invoke(
        "sessions_spawn", {"agentId": "atlas", "task": "t", "sessionKey": INCIDENT_KEY}, PEGGY
    )
    assert spawned["childSessionKey"] == "agent:atlas:main"
    await gateway.runs.close(1)
    await gateway.http.aclose()


def test_audit_rotation_keeps_backups(tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    audit = AuditLog(tmp_path / "a.jsonl", metrics, max_bytes=200, backups=2)

    async def write() -> None:
        for i in range(20):
            await audit.record({"decision": "rejected", "i": i})
            await audit.flush()  # one write per event, so the size check rotates

    asyncio.run(write())
    assert (tmp_path / "a.jsonl.1").exists() and (tmp_path / "a.jsonl.2").exists()
    assert not (tmp_path / "a.jsonl.3").exists()
    assert audit.read()[-1]["i"] == 19


def test_audit_lines_are_rendered_by_the_writer_in_order_with_their_time(tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    audit = AuditLog(tmp_path / "a.jsonl", metrics)
    heard: list[dict[str, object]] = []
    audit.subscribe(heard.append)

    async def write() -> list[dict[str, object]]:
        before = datetime.now(UTC).replace(microsecond=0)
        for i in range(3):
            audit.queue({"decision": "rejected", "i": i})
        audit.queue({"decision": "rejected", "bad": object()})  # counted, never raised
        recent = await audit.recent()  # still queued: rendered for the reader
        await audit.flush()
        after = datetime.now(UTC)
        for event in audit.read():
            assert before <= datetime.fromisoformat(str(event["time"])) <= after
        return recent

    recent = asyncio.run(write())
    written = audit.read()
    assert [event["i"] for event in written] == [0, 1, 2]
    assert [event["i"] for event in recent] == [2, 1, 0]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", str(e["time"]))
               for e in written)  # fmt: skip
    assert [e["time"] for e in heard[:3]] == [e["time"] for e in written]
    assert metrics.audit_failures._value.get() == 1
