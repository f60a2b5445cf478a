"""Shared fixtures: an isolated state dir, both stores, configs, a served gateway."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessiongate.config import SessionGateConfig
from sessiongate.logs import configure_logging, log_level
from sessiongate.metrics import GatewayMetrics
from sessiongate.resolver import Resolver
from sessiongate.server.app import RunningGateway, run_gateway
from sessiongate.store import MemorySessionStore, SessionStore, SqliteSessionStore, open_store
from tests.helpers import (
    INCIDENT_KEY,
    STORE_KINDS,
    make_config,
    postgres_schema,
)
from tests.tiers import apply_tiers


class _LoopErrors(logging.Handler):
    """Collects what the event loop logs as errors: "Task exception was never retrieved",
    exceptions in callbacks, "Task was destroyed but it is pending"."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.reported = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def unreported(self) -> list[str]:
        new = self.records[self.reported :]
        self.reported = len(self.records)
        return [self.format(r) for r in new]


# In-process gateways log to stderr, as under `sessiongate serve`; never into the stdout
# of a CLI command a test runs in-process (client commands leave logging alone).
configure_logging(log_level())

LOOP_ERRORS = _LoopErrors()
LOOP_ERRORS.setFormatter(logging.Formatter("%(name)s: %(message)s"))
logging.getLogger("asyncio").addHandler(LOOP_ERRORS)


@pytest.fixture(autouse=True)
def no_event_loop_errors() -> Iterator[None]:
    """Fail a test during which the event loop logged an error (an un-retrieved task
    exception, a failing callback): such a failure would otherwise pass unseen."""
    LOOP_ERRORS.unreported()
    yield
    errors = LOOP_ERRORS.unreported()
    if errors:
        pytest.fail("the event loop logged errors:\n" + "\n\n".join(errors), pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tiers (unit, e2e, slow) come from tests/tiers.py: `pytest -m "not slow"` is fast."""
    apply_tiers(items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Tasks collected only at the end (reference cycles) still fail the run."""
    gc.collect()
    errors = LOOP_ERRORS.unreported()
    if errors:
        print("\nthe event loop logged errors after the tests:\n" + "\n\n".join(errors))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state dir; nothing touches ~/.sessiongate."""
    state = tmp_path / "state"
    monkeypatch.setenv("SESSIONGATE_STATE_DIR", str(state))
    monkeypatch.delenv("SESSIONGATE_CONFIG", raising=False)
    monkeypatch.delenv("SESSIONGATE_TOKEN", raising=False)
    return state


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., SessionGateConfig]:
    """make_config bound to this test's tmp dir; keyword `a__b=v` sets a.b."""
    return lambda **overrides: make_config(tmp_path, **overrides)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with postgres_schema() as url:
        yield url


async def open_test_store(kind: str, tmp_path: Path, postgres: str | None = None) -> SessionStore:
    if kind == "memory":
        return MemorySessionStore()
    if kind == "postgres":
        assert postgres is not None
        return await open_store(postgres)
    return await SqliteSessionStore.open(tmp_path / f"{kind}.db")


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    """Each storage backend in turn: the one conformance suite runs on all of them."""
    async with contextlib.AsyncExitStack() as stack:
        postgres = None
        if request.param == "postgres":
            postgres = await stack.enter_async_context(postgres_schema())
        opened = await open_test_store(request.param, tmp_path, postgres)
        stack.push_async_callback(opened.close)
        yield opened


def make_resolver(config: SessionGateConfig, store: SessionStore) -> Resolver:
    return Resolver(config, store, GatewayMetrics())


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., Any]:
    """`async with serve(config) as gw:` runs the real server on a free loopback port."""

    def start(config: SessionGateConfig) -> Any:
        return run_gateway(config, secrets.token_urlsafe(24))

    return start


__all__ = ["INCIDENT_KEY", "RunningGateway", "make_config", "make_resolver", "open_test_store"]


@pytest.fixture
def state(isolated_state: Path) -> Iterator[Path]:
    """The state folder; every gateway started in it is stopped afterwards."""
    isolated_state.mkdir(parents=True, exist_ok=True)
    yield isolated_state
    for record in (isolated_state / "run").glob("gateway-*.json"):
        pid = json.loads(record.read_text())["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where a browser test saves its screenshots: SESSIONGATE_UI_SCREENSHOTS (to refresh
    docs/screenshots), else the test's tmp dir."""
    target = Path(os.environ.get("SESSIONGATE_UI_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target
