"""Runtimes are built when first needed: reading or repairing the store (`sessions list`,
`show`, `create`, `doctor`) works on a config with an LLM agent without the `llm` extra;
serving it still refuses at once, naming the extra."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from sessiongate.config import SessionGateConfig
from sessiongate.doctor import scan
from sessiongate.errors import MissingExtraError
from sessiongate.gateway import Gateway
from sessiongate.resolver import Caller
from sessiongate.store.base import Origin
from sessiongate.tools.args import ListArgs, SessionArgs

ConfigFactory = Callable[..., SessionGateConfig]


@pytest.fixture
def without_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # `import openai` now fails


def llm_config(config_factory: ConfigFactory) -> SessionGateConfig:
    return config_factory(
        models={"providers": {"local": {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "x"}}},
        agents={"list": [{"id": "atlas", "default": True}, {"id": "peggy", "model": "local/m"}]},
    )


async def test_the_store_is_read_and_repaired_without_the_llm_extra(
    config_factory: ConfigFactory, without_openai: Any
) -> None:
    config = llm_config(config_factory)
    with pytest.raises(MissingExtraError, match=r"sessiongate\[llm\]"):
        await Gateway.open(config)  # serving: refused before anything is written
    gateway = await Gateway.open(config, serving=False)
    try:
        operator = Caller(None, "cli")
        key = "agent:peggy:cron:nightly"
        record, created = await gateway.create_session(key, Origin.CLI, "cli")
        assert created and record.agent_id == "peggy"
        listing = await gateway.list_sessions(ListArgs(agent_id="peggy"), operator)
        assert [s.key for s in listing.sessions] == [key]
        shown = await gateway.show(SessionArgs(session_key=key), operator)
        assert shown.session.agent_id == "peggy"
        assert await scan(gateway) == []
    finally:
        await gateway.close()
