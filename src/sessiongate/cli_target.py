"""Which gateway a client command talks to, in one documented order.

1. ``--url``;
2. the ``--config`` file (or ``$SESSIONGATE_CONFIG``): its ``gateway.port`` (or
   ``--port``, for several gateways serving one file on different ports) and
   ``gateway.bind`` (port 0: the run record of a gateway serving that file);
3. ``--port`` alone: the gateway of this state folder listening on that port;
4. the run record of the one gateway running from this state folder (several:
   the one serving the default config, else an error listing how to pick each);
5. the default config (``~/.sessiongate/config.json5``, else the embedded
   default): ``http://127.0.0.1:18789``.

The token follows the same config: ``--token``/``$SESSIONGATE_TOKEN``, else the
chosen config's ``gateway.auth.token``, else the state folder's ``gateway.token``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sessiongate.errors import InvalidRequestError
from sessiongate.paths import default_config_path, token_file
from sessiongate.run_records import RunRecord, read_records

if TYPE_CHECKING:
    from sessiongate.client import AsyncSessionGateClient
    from sessiongate.config import SessionGateConfig

__all__ = ["Target", "config_url", "open_client", "resolve_target"]


@dataclass(frozen=True, slots=True)
class Target:
    """A gateway URL, why it was chosen, and the config that goes with it."""

    url: str
    source: str
    config: SessionGateConfig
    record: RunRecord | None = None


def config_url(config: SessionGateConfig) -> str:
    """Where a gateway started from `config` listens, as seen from this machine."""
    host = "127.0.0.1" if config.gateway.bind in ("loopback", "all") else config.gateway.host
    return f"http://{host}:{config.gateway.port}"


def _same_file(recorded: str | None, path: Path) -> bool:
    return recorded is not None and Path(recorded).resolve() == path.expanduser().resolve()


def _port_of(url: str) -> int | None:
    tail = url.rstrip("/").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _from_config(path: Path, live: list[RunRecord], port: int | None) -> Target:
    from sessiongate.config import load_config

    config = load_config(path)
    serving = [r for r in live if _same_file(r.config_path, path)]
    wanted = port or config.gateway.port
    record = next((r for r in serving if _port_of(r.url) == wanted), None)
    if wanted == 0 and serving:
        record = serving[0]
    if record is not None and (port or config.gateway.port == 0):
        return Target(
            record.url, f"run record of {path} on port {_port_of(record.url)}", config, record
        )
    if port:
        config = config.model_copy(
            update={"gateway": config.gateway.model_copy(update={"port": port})}
        )
    source = f"{path}: gateway.port {config.gateway.port}, gateway.bind {config.gateway.bind}"
    return Target(config_url(config), source, config, record)


def _choices(live: list[RunRecord]) -> str:
    """How to pick each of several gateways: by --config and --port, or by --url."""
    picks = []
    for r in live:
        by_config = f"--config {r.config_path} --port {_port_of(r.url)}" if r.config_path else ""
        picks.append(f"{r.url} (pid {r.pid}): {by_config or '--url ' + r.url}")
    return "; ".join(picks)


def _from_records(live: list[RunRecord]) -> Target | None:
    if not live:
        return None
    if len(live) > 1:
        default = default_config_path()
        serving_default = [
            r for r in live if r.config_path is None or _same_file(r.config_path, default)
        ]
        if len(serving_default) != 1:
            raise InvalidRequestError(
                f"{len(live)} gateways run from this state folder: {_choices(live)}",
                details={"hint": "pick one with --config and --port (or --url)"},
            )
        live = serving_default
    from sessiongate.config import load_config

    record = live[0]
    config = load_config(record.config_path) if record.config_path else load_config()
    source = f"run record {record.path} (pid {record.pid})"
    return Target(record.url, source, config, record)


def resolve_target(url: str | None, config_path: Path | None, port: int | None = None) -> Target:
    """The gateway a client command talks to (see the module docstring for the order)."""
    from sessiongate.config import load_config  # pydantic: only once a command needs a target

    if url:
        config = load_config(config_path)
        return Target(url.rstrip("/"), "--url", config)
    live, _ = read_records()
    explicit = config_path or os.environ.get("SESSIONGATE_CONFIG")
    if explicit:
        return _from_config(Path(explicit), live, port)
    if port:
        live = [r for r in live if _port_of(r.url) == port]
        if not live:
            config = load_config()
            config = config.model_copy(
                update={"gateway": config.gateway.model_copy(update={"port": port})}
            )
            return Target(config_url(config), f"--port {port}", config)
    from_record = _from_records(live)
    if from_record is not None:
        return from_record
    config = load_config()
    file = default_config_path()
    source = f"default config {file if file.exists() else '(embedded default)'}"
    return Target(config_url(config), f"{source}: gateway.port {config.gateway.port}", config)


def target_token(target: Target, token: str | None) -> str | None:
    """--token, else the target config's gateway.auth.token, else the state dir's token file."""
    if token:
        return token
    if target.config.gateway.auth.token:
        return target.config.gateway.auth.token
    if token_file().exists():
        return token_file().read_text(encoding="utf-8").strip()
    return None


def open_client(target: Target, token: str | None) -> AsyncSessionGateClient:
    """A client for `target` with the token that goes with it."""
    from sessiongate.client import AsyncSessionGateClient

    return AsyncSessionGateClient(target.url, target_token(target, token))
