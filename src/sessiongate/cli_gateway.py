"""The gateway's lifecycle from the CLI: `serve [--detach]`, `status [--wait]`, `stop`, `init`."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from sessiongate.cli_output import (
    ConfigOption,
    GatewayChoice,
    JsonOption,
    emit_json,
    err,
    gateway_options,
    guarded,
    out,
    run,
)
from sessiongate.cli_target import Target, open_client, resolve_target
from sessiongate.errors import ConflictError, GatewayUnreachableError, InvalidRequestError
from sessiongate.logs import LogFormat, configure_logging, log_level
from sessiongate.paths import state_dir, token_file
from sessiongate.private_files import touch_private
from sessiongate.run_records import (
    RunRecord,
    describe_store,
    pid_alive,
    read_records,
    remove_record,
    write_record,
)

if TYPE_CHECKING:
    from sessiongate.config import SessionGateConfig

__all__ = ["init", "serve", "status", "stop"]

POLL_SECONDS = 0.1
DETACH_READY_SECONDS = 60.0

PortOption = Annotated[
    int | None, typer.Option(min=1, max=65535, help="Override gateway.port (1-65535).")
]
LogFormatOption = Annotated[
    LogFormat | None,
    typer.Option("--log-format", help="auto (human on a terminal, else json), human or json."),
]


def say_target(target: Target, verbose: bool) -> None:
    """With -v: which gateway a command talks to, and why."""
    if verbose:
        err.print(f"[dim]gateway {target.url} (from {target.source})[/]", highlight=False)


def chosen_target(gateway: GatewayChoice) -> Target:
    """The gateway the options chose (said with -v)."""
    target = resolve_target(gateway.url, gateway.config_path, gateway.port)
    say_target(target, gateway.verbose)
    return target


# ---------------------------------------------------------------- serve


def serve(
    config_path: ConfigOption = None,
    port: PortOption = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background; return once it is ready.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Serve a SQLite store another gateway already serves.")
    ] = False,
    log_format: LogFormatOption = None,
) -> None:
    """Run the gateway (HTTP + WebSocket) until SIGINT/SIGTERM (or `sessiongate stop`)."""
    from sessiongate.config import config_file, load_config
    from sessiongate.server.auth import gateway_token
    from sessiongate.state_trust import check_state_trusted

    with guarded():
        config = load_config(config_path)
        check_state_trusted(config)
        token, generated = gateway_token(config)
        _check_port_free(config, port)
        _check_store_not_served(config, force)
    configure_logging(log_level(config.logging.level), log_format or config.logging.format)
    file = config_file(config_path)
    if detach:
        _detach(file, port, force, log_format)
        return
    _serve_foreground(config, token, generated, file, port)


def _check_port_free(config: SessionGateConfig, port: int | None) -> None:
    """Refuse, in our own words only, a port something already listens on (before uvicorn
    logs its own error, and before a detached child appends to the shared log)."""
    wanted = port or config.gateway.port
    if wanted == 0:
        return
    host = config.gateway.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, wanted))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return  # not ours to judge here: uvicorn reports it
            listen = f"http://{host}:{wanted}"
            live, _ = read_records()
            holder = next((r for r in live if r.url.endswith(f":{wanted}")), None)
            who = f"sessiongate pid {holder.pid}" if holder else "another program"
            err.print(f"[bold red]error[/] [GATEWAY_NOT_STARTED] could not serve on {listen}: "
                      f"{who} listens there", highlight=False)  # fmt: skip
            err.print("[dim]hint:[/] pick another port with --port (or gateway.port)")
            raise typer.Exit(1) from None


def _check_store_not_served(config: SessionGateConfig, force: bool) -> None:
    store = describe_store(config.storage_url)
    live, _ = read_records()
    serving = [r for r in live if r.store == store]
    if not serving:
        return
    others = ", ".join(f"{r.url} (pid {r.pid})" for r in serving)
    if store.startswith("sqlite:") and not force:
        raise ConflictError(
            f"{store} is already served by {others}",
            details={
                "hint": "two processes on one SQLite file contend for its lock; stop the other "
                "(`sessiongate stop --url …`), use PostgreSQL, or pass --force"
            },
        )
    err.print(f"[yellow]warning[/] {store} is also served by {others}", highlight=False)


def _banner(url: str, config: SessionGateConfig, generated: bool) -> None:
    from sessiongate import __version__
    from sessiongate.policy import effective_policies

    out.print(f"[bold]sessiongate {__version__}[/] listening on {url} (ws: /ws)")
    out.print(f"page    {url}/ui (sign in with {token_source(config)})", highlight=False)
    out.print(f"storage {describe_store(config.storage_url)}")
    wire = {p.agent_id: p.to_wire() for p in effective_policies(config)}
    out.print(escape("\n".join(policy_lines(wire))), highlight=False)
    if generated:
        out.print(f"token in {token_file()} (0600); use it as:")
        out.print(f'  curl -H "Authorization: Bearer $(cat {token_file()})" {url}/v1/sessions')


def policy_lines(policies: dict[str, Any]) -> list[str]:
    """createOnMiss per agent (the wire form of `policy.effective_for`), as status and the
    serve banner print it: the main key's value, then what decides the agent's other keys."""
    values = "  ".join(f"{agent}={_value(p['createOnMiss'])}" for agent, p in policies.items())
    rule_count = len({r["decidedBy"] for p in policies.values() for r in p["rules"]})
    lines = [f"createOnMiss  {values}" + (f"  (+ {rule_count} rule(s))" if rule_count else "")]
    for agent, p in policies.items():
        if not p["rules"] and p["decidedBy"] == p["otherKeys"]["decidedBy"]:
            continue
        rules = "".join(f"{r['match']} → {_value(r['createOnMiss'])}, " for r in p["rules"])
        other = p["otherKeys"]
        lines.append(
            f"  {agent}: main by {p['decidedBy']}; other keys: {rules}"
            f"else {_value(other['createOnMiss'])} ({other['decidedBy']})"
        )
    return lines


def _value(value: bool | str) -> str:
    return str(value).lower()


def _serve_foreground(
    config: SessionGateConfig, token: str, generated: bool, file: Path | None, port: int | None
) -> None:
    from sessiongate.server.app import serve_forever

    records: list[RunRecord] = []

    def ready(url: str) -> None:
        records.append(write_record(url, str(file) if file else None, config.storage_url))
        _banner(url, config, generated)

    try:
        with guarded():
            serve_forever(config, token, port, ready)
    except SystemExit as exc:  # uvicorn exits this way when it cannot bind
        if exc.code in (0, None):
            return
        listen = f"http://{config.gateway.host}:{port or config.gateway.port}"
        err.print(f"[bold red]error[/] [GATEWAY_NOT_STARTED] could not serve on {listen}")
        err.print("[dim]hint:[/] is another gateway on that port? pick one with --port")
        raise typer.Exit(1) from None
    finally:
        for record in records:
            remove_record(record)


def token_source(config: SessionGateConfig) -> str:
    """Where the token a person signs in with lives: the config's value or the token file."""
    if config.gateway.auth.token:
        return "gateway.auth.token from the config"
    return f"the token in {token_file()}"


def _detach(file: Path | None, port: int | None, force: bool, log_format: str | None) -> None:
    from sessiongate import __version__

    command = [sys.executable, "-m", "sessiongate", "serve"]
    command += ["--config", str(file)] if file else []
    command += ["--port", str(port)] if port else []
    command += ["--force"] if force else []
    command += ["--log-format", log_format] if log_format else []
    log_path = state_dir() / "gateway.log"
    touch_private(log_path)
    start = log_path.stat().st_size  # on failure, show what this start wrote, nothing older
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    record = _wait_for_record(process, log_path, start)
    from sessiongate.config import load_config

    record_config = load_config(file)
    out.print(
        f"[bold]sessiongate {__version__}[/] running in the background on {record.url} "
        f"(pid {record.pid})",
        highlight=False,
    )
    out.print(f"page {record.url}/ui (sign in with {token_source(record_config)})", highlight=False)
    out.print(f"log {log_path}; stop with `sessiongate stop`", highlight=False)


def _wait_for_record(process: subprocess.Popen[bytes], log_path: Path, start: int) -> RunRecord:
    deadline = time.monotonic() + DETACH_READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with log_path.open("rb") as log:
                log.seek(start)
                written = log.read().decode("utf-8", errors="replace")
            tail = written.splitlines()[-5:]
            err.print("\n".join(tail), markup=False, highlight=False)
            err.print(f"[bold red]error[/] [GATEWAY_NOT_STARTED] see {log_path}")
            raise typer.Exit(1)
        live, _ = read_records()
        record = next((r for r in live if r.pid == process.pid), None)
        if record is not None:
            return record
        time.sleep(POLL_SECONDS)
    err.print(f"[bold red]error[/] [GATEWAY_NOT_STARTED] not ready after "
              f"{DETACH_READY_SECONDS:.0f} s (pid {process.pid}); see {log_path}")  # fmt: skip
    raise typer.Exit(1)


# ---------------------------------------------------------------- status / stop


@gateway_options
def status(
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for the gateway to be ready.")
    ] = 0,
    *,
    gateway: GatewayChoice,
    as_json: JsonOption = False,
) -> None:
    """Is the gateway running? URL, PID, version, store, sessions, createOnMiss per agent.

    Exit 0 when it answers, 1 when it does not (after --wait seconds).
    """
    _, stale = read_records()
    for record in stale:
        err.print(f"[yellow]stale run record[/] of pid {record.pid} ({record.url}) removed: "
                  "that gateway did not exit cleanly", highlight=False)  # fmt: skip
    with guarded(as_json):
        target, result = _poll_status(gateway, wait)
    say_target(target, gateway.verbose)
    body = {"running": result is not None, "url": target.url, "source": target.source,
            **(result or {})}  # fmt: skip
    if as_json:
        emit_json({"ok": True, "result": body})
    else:
        _print_status(body)
    if result is None:
        raise typer.Exit(1)


def _poll_status(gateway: GatewayChoice, wait: float) -> tuple[Target, dict[str, Any] | None]:
    deadline = time.monotonic() + wait
    while True:
        # a record may appear while we wait
        target = resolve_target(gateway.url, gateway.config_path, gateway.port)
        try:
            return target, run(_fetch_status(target, gateway.token))
        except GatewayUnreachableError:
            if time.monotonic() >= deadline:
                return target, None
        time.sleep(POLL_SECONDS)


async def _fetch_status(target: Target, token: str | None) -> dict[str, Any]:
    async with open_client(target, token) as client:
        return await client.status()


def _print_status(body: dict[str, Any]) -> None:
    if not body["running"]:
        out.print(f"[red]not running[/]: no gateway answers at {body['url']} "
                  f"(from {body['source']})", highlight=False)  # fmt: skip
        return
    lines = [
        f"[green]running[/]       {body['url']} (pid {body['pid']}, sessiongate {body['version']})",
        f"store         {body['store']} ({body['sessions']} sessions)",
        *map(escape, policy_lines(body["createOnMissPolicy"])),
    ]
    out.print("\n".join(lines), highlight=False)


@gateway_options
def stop(
    timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait for a clean exit.")] = 30,
    *,
    gateway: GatewayChoice,
) -> None:
    """Stop the gateway: SIGTERM to its PID, then wait for it to finish its runs and exit."""
    with guarded():
        target = chosen_target(gateway)
        try:
            pid = _pid_of(target, gateway.token)
        except GatewayUnreachableError:
            out.print(f"nothing to stop: no gateway runs at {target.url} (from {target.source})",
                      highlight=False)  # fmt: skip
            return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            err.print(f"[bold red]error[/] pid {pid} still running after {timeout:.0f} s")
            raise typer.Exit(1)
        time.sleep(POLL_SECONDS)
    out.print(f"stopped {target.url} (pid {pid})", highlight=False)


def _pid_of(target: Target, token: str | None) -> int:
    live, _ = read_records()
    record = next((r for r in live if r.url == target.url), None)
    if record is not None:
        return record.pid
    result = run(_fetch_status(target, token))  # no record: ask it, if it runs on this machine
    host = target.url.split("//", 1)[-1].rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        raise InvalidRequestError(  # it answers, so it runs: elsewhere
            f"{target.url} is not a gateway recorded on this machine; stop it where it runs",
            details={"url": target.url},
        )
    pid: int = result["pid"]
    return pid


# ---------------------------------------------------------------- init

STARTER_CONFIG = """\
// sessiongate configuration (JSON5: comments and trailing commas are fine).
// Every key: docs/gateway/configuration-reference.md; `sessiongate config schema`.
// Check it with `sessiongate config validate`.
{
  gateway: {
    port: 18789,
    bind: "loopback",  // "all" or an IP address needs gateway.auth.token
    // auth: { token: "${SESSIONGATE_TOKEN}" },  // unset on loopback: the state folder's token
    sessions: {
      // true: any addressed session is created; "warn": created and audited;
      // false: unknown keys are refused (SESSION_NOT_FOUND) and nothing is created.
      createOnMiss: true,
    },
  },
  session: { dmScope: "main" },  // where direct messages live: main, per-peer, …
  // storage: { url: "postgresql://sessiongate@127.0.0.1/sessiongate" },  // sessiongate[postgres]
  logging: { level: "info", format: "auto" },  // format: auto | human | json
  // metrics: { token: "a-long-random-scrape-token" },  // unset: /metrics open to loopback only
  agents: {
    list: [
      { id: "atlas", default: true },  // model "echo" until you configure models.providers
      { id: "peggy" },
    ],
  },
}
"""


def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
) -> None:
    """Write a commented starter config and a token into the state folder."""
    from sessiongate.config import load_config
    from sessiongate.server.auth import gateway_token

    path = state_dir() / "config.json5"
    if path.exists() and not force:
        err.print(f"[bold red]error[/] {path} exists; keep it, or pass --force to overwrite")
        raise typer.Exit(1)
    touch_private(path)
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    with guarded():
        gateway_token(load_config(path))
    out.print(f"wrote {path}\ntoken in {token_file()} (0600)\n"
              "next: `sessiongate config validate`, then `sessiongate serve`")  # fmt: skip
