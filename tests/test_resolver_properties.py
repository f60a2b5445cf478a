"""Properties of the one resolver over generated references (hypothesis, memory store)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiongate.errors import SessionGateError
from sessiongate.metrics import GatewayMetrics
from sessiongate.resolver import Caller, Intent, Resolver
from sessiongate.store import MemorySessionStore
from tests.helpers import make_config

SEGMENTS = st.sampled_from(
    ["agent", "atlas", "peggy", "zed", "main", "direct", "group", "thread", "cron", "subagent",
     "telegram", "slack", "42", "6596143250", "ops", "", "Atlas", "MAIN", " main"]
)  # fmt: skip
REFERENCES = st.one_of(
    st.lists(SEGMENTS, min_size=1, max_size=7).map(":".join),
    st.text(max_size=40),
)
CALLERS = st.sampled_from([Caller(None, "test"), Caller("agent:peggy:main", "test")])


def resolve_all(create_on_miss: object, references: list[str], caller: Caller, tmp: Path) -> tuple:
    config = make_config(tmp, gateway__sessions={"createOnMiss": create_on_miss})
    store = MemorySessionStore()
    resolver = Resolver(config, store, GatewayMetrics())

    async def run() -> tuple[list[object], int]:
        await resolver.ensure_startup_sessions()
        outcomes: list[object] = []
        for reference in references:
            try:
                outcomes.append((await resolver.resolve(reference, caller, Intent.ADDRESS)).key)
            except SessionGateError as exc:
                outcomes.append(exc)
        return outcomes, await store.count_sessions()

    return asyncio.run(run())


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(references=st.lists(REFERENCES, max_size=8), caller=CALLERS)
def test_strict_never_creates_and_only_raises_gateway_errors(
    references: list[str], caller: Caller, tmp_path: Path
) -> None:
    outcomes, count = resolve_all(False, references, caller, tmp_path)
    assert count == 2  # only the two mains from start-up
    for outcome in outcomes:
        assert outcome in ("agent:atlas:main", "agent:peggy:main") or isinstance(
            outcome, SessionGateError
        )


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(references=st.lists(REFERENCES, max_size=8), caller=CALLERS)
def test_permissive_resolves_a_key_to_one_session_whatever_its_spelling(
    references: list[str], caller: Caller, tmp_path: Path
) -> None:
    variants = [r for ref in references for r in (ref, ref.upper(), f"  {ref} ")]
    outcomes, count = resolve_all(True, variants, caller, tmp_path)
    keys = {o for o in outcomes if isinstance(o, str)}
    assert count == 2 + len(keys - {"agent:atlas:main", "agent:peggy:main"})
    for i in range(0, len(outcomes), 3):
        spellings = outcomes[i : i + 3]
        if all(isinstance(o, str) for o in spellings):
            assert len(set(spellings)) == 1  # case and whitespace never split a session
        assert all(isinstance(o, str | SessionGateError) for o in spellings)
