"""Session key grammar: every kind parses, canonical form is stable, bad keys say why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessiongate.errors import InvalidSessionKeyError
from sessiongate.keys import SessionKind, canonical_session_key, parse_session_key
from sessiongate.lints import lint_session_key
from tests.helpers import INCIDENT_KEY, make_config

UUID = "0b8f6c1e-2f4a-4c3b-9a51-7d1e2f3a4b5c"

VALID = {
    "agent:atlas:main": SessionKind.MAIN,
    "agent:atlas:direct:42": SessionKind.DIRECT,
    "agent:atlas:telegram:direct:42": SessionKind.DIRECT,
    INCIDENT_KEY: SessionKind.DIRECT,
    "agent:atlas:slack:group:g1": SessionKind.GROUP,
    "agent:atlas:slack:group:g1:thread:t9": SessionKind.GROUP,
    "agent:atlas:discord:channel:c1": SessionKind.CHANNEL,
    "agent:atlas:discord:channel:c1:thread:t2": SessionKind.CHANNEL,
    f"agent:atlas:subagent:{UUID}": SessionKind.SUBAGENT,
    "agent:atlas:cron:nightly-report": SessionKind.CRON,
    "agent:atlas:a2a:ctx-never-issued-7f3a9c": SessionKind.A2A,
    f"hook:{UUID}": SessionKind.HOOK,
}


@pytest.mark.parametrize(("text", "kind"), VALID.items())
def test_every_kind_parses(text: str, kind: SessionKind) -> None:
    key = parse_session_key(text, "atlas")
    assert key.kind is kind
    assert key.text == text


def test_case_whitespace_and_bare_main_are_canonicalised() -> None:
    assert canonical_session_key("  Agent:ATLAS:Main ", "atlas") == "agent:atlas:main"
    assert canonical_session_key("main", "atlas") == "agent:atlas:main"
    assert canonical_session_key("MAIN", "peggy") == "agent:peggy:main"


def test_incident_key_parts() -> None:
    key = parse_session_key(INCIDENT_KEY, "atlas")
    assert (key.agent_id, key.channel, key.account, key.peer) == (
        "atlas",
        "telegram",
        "atlas",
        "6596143250",
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("agent::main", "empty"),
        ("agent:at las:main", "illegal character"),
        ("agent:atlas:slack:bogus:x", "unknown kind"),
        ("foo:bar", "unknown kind"),
        ("agent:atlas:main:extra", "segments"),
        ("agent:atlas:direct", "segments"),
        ("x" * 600, "512"),
        ("agent:atlas:subagent:not-a-uuid", "subagent uuid"),
    ],
)
def test_invalid_keys_say_which_segment_and_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidSessionKeyError) as info:
        parse_session_key(text, "atlas")
    assert reason in info.value.message.lower()
    assert info.value.code == "INVALID_SESSION_KEY"


key_texts = (
    st.sampled_from(list(VALID))
    .flatmap(lambda k: st.tuples(st.just(k), st.sampled_from([str.upper, str.title, str.lower])))
    .map(lambda pair: "  " + pair[1](pair[0]) + " ")
)


@given(key_texts)
def test_canonicalisation_is_idempotent(text: str) -> None:
    once = canonical_session_key(text, "atlas")
    assert canonical_session_key(once, "atlas") == once


@given(key_texts)
def test_parse_of_canonical_round_trips(text: str) -> None:
    key = parse_session_key(text, "atlas")
    again = parse_session_key(key.text, "atlas")
    assert again == key


@given(st.text(max_size=600))
def test_any_string_parses_or_raises_invalid_key(text: str) -> None:
    try:
        key = parse_session_key(text, "atlas")
    except InvalidSessionKeyError:
        return
    assert parse_session_key(key.text, "atlas") == key


@given(
    st.lists(
        st.one_of(
            st.sampled_from(["agent", "main", "direct", "group", "thread", "atlas", ""]),
            st.text(alphabet="abcXYZ019:-_ .", max_size=12),
        ),
        max_size=8,
    ).map(":".join)
)
def test_colon_structured_strings_parse_or_raise_invalid_key(text: str) -> None:
    try:
        parse_session_key(text, "atlas")
    except InvalidSessionKeyError as exc:
        assert exc.details["reason"]


def test_lint_flags_the_incident_key_with_the_main_session(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = make_config(tmp_path)
    lints = lint_session_key(parse_session_key(INCIDENT_KEY, "atlas"), config)
    assert [lint.code for lint in lints] == ["DM_SCOPE_MISMATCH"]
    assert lints[0].suggestion == "agent:atlas:main"
    assert "dmScope=main" in lints[0].message


def test_lint_flags_unknown_agent_and_accepts_reachable_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = make_config(tmp_path)
    unknown = lint_session_key(parse_session_key("agent:zed:main", "atlas"), config)
    assert [lint.code for lint in unknown] == ["UNKNOWN_AGENT"]
    assert lint_session_key(parse_session_key("agent:atlas:main", "atlas"), config) == []
    per_peer = make_config(tmp_path, session__dmScope="per-peer")
    assert lint_session_key(parse_session_key("agent:atlas:direct:42", "atlas"), per_peer) == []
