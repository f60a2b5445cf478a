"""What an operator types or runs into: storage URLs, `storage migrate`, PostgreSQL failures
from every command that opens the store, and the modes of the files in the state folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sessiongate.audit import AuditLog
from sessiongate.config import SessionGateConfig, parse_config
from sessiongate.errors import ConfigError
from sessiongate.gateway import Gateway
from sessiongate.metrics import GatewayMetrics
from sessiongate.server.auth import gateway_token, token_file
from tests.helpers import POSTGRES_URL, GatewayProcess, require_postgres, sessiongate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("url", "said"),
    [("", "is empty"), ("   ", "is empty"), ("sqlite://state.db", "three slashes"),
     ("sqlite:///", "three slashes"), ("postgresql://h:port/db", "not a valid"),
     ("mysql://x", "expected sqlite")],
)  # fmt: skip
def test_an_empty_or_unparseable_storage_url_is_a_config_error(url: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"storage": {"url": url}}, "test")
    assert said in caught.value.message and "storage.url" in caught.value.message


def test_migrate_refuses_a_missing_source_and_creates_nothing(tmp_path: Path) -> None:
    typo, target = tmp_path / "stat.db", tmp_path / "target.db"
    done = sessiongate("storage", "migrate", "--from", f"sqlite:///{typo}",
                       "--to", f"sqlite:///{target}")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no SQLite store at" in done.stderr and "nothing was created" in done.stderr
    assert "Traceback" not in done.stderr
    assert not typo.exists() and not target.exists()


def test_migrate_explains_three_and_four_slashes(tmp_path: Path) -> None:
    source = tmp_path / "real.db"
    sessiongate("storage", "migrate", "--from", "memory://", "--to", f"sqlite:///{source}")
    assert source.exists()
    relative = "sqlite:///" + str(source).lstrip("/")  # meant absolute, wrote three slashes
    done = sessiongate("storage", "migrate", "--from", relative, "--to", "memory://", cwd=tmp_path)
    assert done.returncode == 2
    assert f"did you mean sqlite:///{source}" in done.stderr.replace("\n", "")
    assert not (tmp_path / str(source).lstrip("/")).exists()


def test_migrate_refuses_a_source_a_gateway_serves_unless_forced(tmp_path: Path) -> None:
    db = tmp_path / "served.db"
    config = {"storage": {"url": f"sqlite:///{db}"}, "audit": {"path": str(tmp_path / "a.jsonl")}}
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    with GatewayProcess(tmp_path, "served", config):
        refused = sessiongate("storage", "migrate", "--from", f"sqlite:///{db}", "--to", copy)
        assert refused.returncode == 1, refused.stderr
        assert "a gateway is serving from" in refused.stderr and "--force" in refused.stderr
        forced = sessiongate(
            "storage", "migrate", "--force", "--json", "--from", f"sqlite:///{db}", "--to", copy
        )
        assert forced.returncode == 0, forced.stderr
    after = sessiongate("storage", "migrate", "--from", f"sqlite:///{db}", "--to", "memory://")
    assert after.returncode == 0, after.stderr  # the gateway stopped: nobody holds it


@pytest.mark.parametrize("command", [["serve"], ["doctor"], ["storage", "migrate"]])
async def test_postgres_failures_are_one_line_and_a_hint_from_every_command(
    tmp_path: Path, command: list[str]
) -> None:
    await require_postgres()
    missing_db = POSTGRES_URL.rsplit("/", 1)[0] + "/sessiongate_no_such_database"
    config = tmp_path / "c.json5"
    config.write_text(f"{{ storage: {{ url: '{missing_db}' }}, gateway: {{ port: 0 }} }}")
    args = ["--from", missing_db, "--to", "memory://"] if command[0] == "storage" else []
    args += [] if command[0] == "storage" else ["--config", str(config)]
    done = sessiongate(*command, *args)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    error = next(line for line in lines if line.startswith("error"))
    assert "STORE_UNAVAILABLE" in error and "sessiongate_no_such_database" in error
    assert any(line.startswith("hint:") and "createdb" in line for line in lines), lines


async def test_the_state_folder_is_0700_and_every_file_in_it_0600(
    isolated_state: Path, config_factory: type[SessionGateConfig]
) -> None:
    config = config_factory(
        storage={"url": f"sqlite:///{isolated_state / 'state.db'}"},
        audit={"path": str(isolated_state / "audit" / "sessions.jsonl")},
    )
    gateway = await Gateway.open(config)
    await gateway.audit.record({"decision": "rejected"})
    await gateway.audit.flush()
    gateway_token(config)
    files = [isolated_state / n for n in ("state.db", "state.db-wal", "state.db-shm")]
    files += [config.audit_path, token_file()]
    assert all(mode(f) == 0o600 for f in files), {str(f): oct(mode(f)) for f in files}
    assert mode(isolated_state) == mode(config.audit_path.parent) == 0o700
    await gateway.close()


async def test_the_audit_writer_refuses_to_follow_a_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("untouched\n")
    link = tmp_path / "audit" / "sessions.jsonl"
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    metrics = GatewayMetrics()
    audit = AuditLog(link, metrics)
    await audit.record({"decision": "rejected"})
    await audit.flush()
    assert elsewhere.read_text() == "untouched\n"
    assert metrics.audit_failures._value.get() == 1
