"""The `sessiongate` command: serve, send, spawn, sessions, config, demo.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error. Errors print one
readable line and a hint, never a traceback; `--json` prints the wire form.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from sessiongate import cli_gateway
from sessiongate.cli_import import import_app
from sessiongate.cli_mcp import mcp_stdio
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
from sessiongate.cli_target import open_client
from sessiongate.errors import InvalidRequestError, plain_message
from sessiongate.logs import configure_logging, log_level
from sessiongate.run_records import describe_store
from sessiongate.text import visible

if TYPE_CHECKING:
    from sessiongate.client import AsyncSessionGateClient
    from sessiongate.config import SessionGateConfig
    from sessiongate.gateway import Gateway
    from sessiongate.resolver import Caller
    from sessiongate.tools.base import ToolArgs

__all__ = ["app", "main"]

A = TypeVar("A", bound="ToolArgs")

app = typer.Typer(
    name="sessiongate",
    help="A gateway for multi-agent systems that can fail closed on unknown session keys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and describe configuration.", no_args_is_help=True)
sessions_app = typer.Typer(
    help="Inspect, delete, reset and archive sessions.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="Read the audit log of refused, warned and created addresses.", no_args_is_help=True
)
storage_app = typer.Typer(help="Manage the session store.", no_args_is_help=True)

# Every command and group is registered here, in one place.
app.add_typer(config_app, name="config")
app.add_typer(sessions_app, name="sessions")
app.add_typer(audit_app, name="audit")
app.add_typer(storage_app, name="storage")
app.add_typer(import_app, name="import")
app.command()(cli_gateway.serve)
app.command()(cli_gateway.status)
app.command()(cli_gateway.stop)
app.command()(cli_gateway.init)
app.command("mcp")(mcp_stdio)


# Commands that only talk to a running gateway: nothing in them logs, so they skip
# configuring structlog (and importing it). Every other command runs gateway code in-process.
CLIENT_COMMANDS = frozenset({"send", "spawn", "status", "stop", "mcp"})


def _version(value: bool) -> None:
    if value:
        from sessiongate import __version__

        out.print(f"sessiongate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """sessiongate: host agents, route messages by session key, refuse unknown keys."""
    if ctx.invoked_subcommand not in CLIENT_COMMANDS:
        configure_logging(log_level())  # `serve` reconfigures from its config


# ---------------------------------------------------------------- config


@config_app.command("validate")
def config_validate(
    path: Annotated[
        Path | None, typer.Argument(help="Config file to check (same as --config).")
    ] = None,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a config file (default: the one `serve` would read); print every problem at once,
    and whether the extras it needs (postgres, llm) are installed."""
    from sessiongate.config import config_file, load_config
    from sessiongate.extras import check_extras

    path = path or config_path
    with guarded(as_json):
        config = load_config(path)
        check_extras(config)
        file = config_file(path)
        source = str(file) if file else "embedded default (no config file)"
        if as_json:
            emit_json({"ok": True, "result": {"source": source}})
        else:
            agents = ", ".join(a.id for a in config.agents.entries)
            store = describe_store(config.storage_url)
            out.print(f"[green]ok[/] {source}: agents {agents}; storage {store}")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file."""
    from sessiongate.config import SessionGateConfig

    schema = SessionGateConfig.model_json_schema(by_alias=True)
    print(json.dumps(schema, indent=2))


# ---------------------------------------------------------------- sessions


def _table(sessions: list[dict[str, Any]]) -> Table:
    """Sessions newest first by creation time; a key is never cut or wrapped (it is meant to
    be copied): the other columns fold around it."""
    longest = max((len(s["key"]) for s in sessions), default=3)
    table = Table(
        Column("key", no_wrap=True, min_width=longest),
        *(Column(name, overflow="fold") for name in ("agent", "kind", "status", "origin")),
        Column("msgs", overflow="fold"),
        Column("created (UTC)", overflow="fold"),
    )  # fmt: skip
    for s in sorted(sessions, key=lambda s: s["createdAt"] or "", reverse=True):
        created = (s["createdAt"] or "")[:16].replace("T", " ")
        row = (s["key"], s["agentId"], s["kind"], s["status"], s["origin"],
               str(s.get("messageCount", "")), created)  # fmt: skip
        table.add_row(*row)
    return table


NARROWEST_OTHER_COLUMNS = 52  # six columns of 5 characters and the borders


def _print_sessions(sessions: list[dict[str, Any]], wide: bool) -> None:
    """A table; on a terminal too narrow for it beside the longest key, one block per
    session instead (the key whole on its own line, the rest below)."""
    longest = max((len(s["key"]) for s in sessions), default=0)
    if wide:
        Console(soft_wrap=True, width=10_000).print(_table(sessions), crop=False)
    elif out.width >= longest + NARROWEST_OTHER_COLUMNS:
        out.print(_table(sessions))
    else:
        for s in sorted(sessions, key=lambda s: s["createdAt"] or "", reverse=True):
            created = (s["createdAt"] or "")[:16].replace("T", " ")
            out.print(s["key"], markup=False, highlight=False, soft_wrap=True)
            out.print(f"  {s['agentId']} · {s['kind']} · {s['status']} · origin {s['origin']} · "
                      f"{s.get('messageCount', 0)} msgs · {created}", markup=False,
                      highlight=False)  # fmt: skip


DirectOperation = Callable[["Gateway", "Caller"], Awaitable[dict[str, Any]]]


def _direct(
    config_path: Path | None,
    as_json: bool,
    operation: DirectOperation,
    show: Callable[[dict[str, Any]], None],
) -> None:
    """Run `operation` as the operator on the configured store itself (no gateway serving),
    and `show` its result (with --json, print its wire form)."""

    async def operate() -> dict[str, Any]:
        from sessiongate.config import load_config
        from sessiongate.gateway import Gateway
        from sessiongate.resolver import Caller

        config = load_config(config_path)
        say_direct(config)
        gateway = await Gateway.open(config, serving=False)
        try:
            return await operation(gateway, Caller(None, "cli"))
        finally:
            await gateway.close()

    with guarded(as_json):
        result = run(operate())
    _answer(result, as_json, show)


def _answer(result: dict[str, Any], as_json: bool, show: Callable[[dict[str, Any]], None]) -> None:
    """A command's result: its wire form with --json, else as `show` prints it."""
    if as_json:
        emit_json({"ok": True, "result": result})
    else:
        show(result)


def say_direct(config: SessionGateConfig) -> None:
    """Commands that open the store themselves say so (no gateway, no token involved)."""
    store = describe_store(config.storage_url)
    err.print(f"[dim]reading {store} directly (not through a gateway)[/]", highlight=False)


@sessions_app.command("list")
def sessions_list(
    agent: Annotated[str | None, typer.Option(help="Only this agent's sessions.")] = None,
    kind: Annotated[str | None, typer.Option(help="main, direct, group, subagent, …")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="nextCursor of a previous page.")] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="Never fold a column (the table may be wider).")
    ] = False,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List sessions in the configured store, newest first."""

    async def page(gateway: Gateway, caller: Caller) -> dict[str, Any]:
        args = {"agentId": agent, "kind": kind, "limit": limit, "cursor": cursor}
        args = {k: v for k, v in args.items() if v is not None}
        return await gateway.invoke("sessions_list", args, caller)

    def show(result: dict[str, Any]) -> None:
        _print_sessions(result["sessions"], wide)
        if result["nextCursor"]:
            out.print(f"[dim]more: --cursor {result['nextCursor']}[/]")

    _direct(config_path, as_json, page, show)


ArchivedOption = Annotated[
    bool,
    typer.Option(
        "--archived",
        help="The key's own session, not where its alias leads (a repaired phantom's).",
    ),
]


@sessions_app.command("show")
def sessions_show(
    key: Annotated[str, typer.Argument(help="Session key (any case; bare 'main' works).")],
    archived: ArchivedOption = False,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one session; an unknown key is an error (nothing is created)."""

    async def resolve(gateway: Gateway, caller: Caller) -> dict[str, Any]:
        from sessiongate.tools.args import SessionArgs

        args = SessionArgs(session_key=key, follow_alias=not archived)
        resolution = await gateway.resolve(args, caller)
        return {
            **resolution.session.to_wire(),
            "requestedKey": key,
            "warnings": resolution.warnings,
        }

    _direct(config_path, as_json, resolve, _print_session)


def _print_session(session: dict[str, Any]) -> None:
    table = Table("field", "value", show_header=False)
    for name, value in session.items():
        if value is None or value == [] or value == {}:
            continue  # an empty field says nothing
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        table.add_row(name, visible(text))  # a label's escapes must not reach the terminal
    out.print(table)


@sessions_app.command("create")
def sessions_create(
    key: Annotated[
        str, typer.Argument(help="Session key to create (e.g. agent:atlas:cron:nightly).")
    ],
    label: Annotated[str | None, typer.Option(help="Label for the session.")] = None,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a session on purpose (origin 'cli'), e.g. before turning createOnMiss off."""

    async def create(gateway: Gateway, caller: Caller) -> dict[str, Any]:
        from sessiongate.store.base import Origin
        from sessiongate.tools.args import PatchArgs  # a label checked as on the wire

        checked = _checked(PatchArgs, "sessions create", session_key=key, label=label)
        record, created = await gateway.create_session(key, Origin.CLI, "cli", checked.label)
        return {**record.to_wire(), "created": created}

    def show(result: dict[str, Any]) -> None:
        verb = "created" if result["created"] else "already exists:"
        out.print(f"[green]{verb}[/] {result['key']} (origin {result['origin']})")

    _direct(config_path, as_json, create, show)


ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (kept in the audit and on a tombstone).")
]
LifecycleCall = Callable[[Any, Any], Awaitable[Any]]


def _checked(model: type[A], what: str, **fields: Any) -> A:
    """A command's arguments checked as on the wire: a bad one is one INVALID_REQUEST line
    (raised inside the operation, where `guarded` answers it), never a traceback."""
    from sessiongate.tools.base import validate_args

    return validate_args(model, fields, what)


def _lifecycle(
    call: LifecycleCall, config_path: Path | None, as_json: bool, done: Callable[[Any], str]
) -> None:
    """Run one lifecycle operation as the operator, on the configured store directly."""

    async def operate(gateway: Gateway, caller: Caller) -> dict[str, Any]:
        result: dict[str, Any] = (await call(gateway, caller)).to_wire()
        return result

    _direct(config_path, as_json, operate, lambda result: out.print(done(result), highlight=False))


@sessions_app.command("delete")
def sessions_delete(
    key: Annotated[str, typer.Argument(help="Session key to delete (erase).")],
    force: Annotated[bool, typer.Option("--force", help="Needed for a main session.")] = False,
    reason: ReasonOption = None,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Erase a session: transcript, archives and runs; a tombstone keeps key, when, who, why.

    Nothing re-creates it by itself (a main stays deleted across restarts).
    """
    from sessiongate.tools.args import DeleteArgs

    def describe(r: dict[str, Any]) -> str:
        erased = f"{r['messages']} message(s), {r['runs']} run(s), {r['archivedMessages']} archived"
        return f"[red]deleted[/] {escape(r['sessionKey'])}: {erased} erased"

    def delete(gw: Gateway, caller: Caller) -> Awaitable[Any]:
        args = _checked(DeleteArgs, "sessions delete", session_key=key, force=force, reason=reason)
        return gw.delete(args, caller)

    _lifecycle(delete, config_path, as_json, describe)


@sessions_app.command("reset")
def sessions_reset(
    key: Annotated[str, typer.Argument(help="Session key to start afresh.")],
    delete_old: Annotated[
        bool, typer.Option("--delete-old", help="Delete the old transcript (default: archive).")
    ] = False,
    reason: ReasonOption = None,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """A fresh, empty transcript under the same key; the old one is archived (or deleted)."""
    from sessiongate.tools.args import ResetArgs

    old = "delete" if delete_old else "archive"
    _lifecycle(lambda gw, caller: gw.reset(_checked(ResetArgs, "sessions reset", session_key=key,
                                                    old_transcript=old, reason=reason), caller),
               config_path, as_json,
               lambda r: f"[green]reset[/] {escape(r['sessionKey'])}: {r['archivedMessages']} "
               f"message(s) archived, {r['deletedMessages']} deleted")  # fmt: skip


@sessions_app.command("archive")
def sessions_archive(
    key: Annotated[str, typer.Argument(help="Session key to archive.")],
    reason: ReasonOption = None,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Archive a session (kept, and it still takes messages)."""
    from sessiongate.tools.args import StatusArgs

    _lifecycle(lambda gw, caller: gw.archive(_checked(StatusArgs, "sessions archive",
                                                      session_key=key, reason=reason), caller),
               config_path, as_json,
               lambda r: f"archived {escape(r['key'])}")  # fmt: skip


@sessions_app.command("unarchive")
def sessions_unarchive(
    key: Annotated[str, typer.Argument(help="Session key to make active again.")],
    reason: ReasonOption = None,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make an archived session active again."""
    from sessiongate.tools.args import StatusArgs

    _lifecycle(lambda gw, caller: gw.unarchive(_checked(StatusArgs, "sessions unarchive",
                                                        session_key=key, reason=reason), caller),
               config_path, as_json,
               lambda r: f"active {escape(r['key'])}")  # fmt: skip


@sessions_app.command("prune")
def sessions_prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what session.retention would do.")
    ] = False,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply session.retention now: archive idle sessions, delete long-archived ones."""
    from sessiongate.tools.args import PruneArgs

    def describe(r: dict[str, Any]) -> str:
        verb = "would" if r["dryRun"] else "did"
        lines = [f"{a['action']} {escape(a['sessionKey'])} (idle {a['idleDays']} days, "
                 f"{a['rule']})" for a in r["actions"]]  # fmt: skip
        head = f"retention {verb}: {len(r['archive'])} archive, {len(r['delete'])} delete"
        return "\n".join([head + (" (another gateway is running it)" if r["skipped"] else ""),
                          *lines])  # fmt: skip

    args = PruneArgs(dry_run=dry_run)
    _lifecycle(lambda gw, caller: gw.prune(args, caller), config_path, as_json, describe)


ClientCall = Callable[["AsyncSessionGateClient"], Awaitable[dict[str, Any]]]


def _through(
    gateway: GatewayChoice, as_json: bool, show: Callable[[dict[str, Any]], None], call: ClientCall
) -> dict[str, Any]:
    """Make `call` with a client of the chosen gateway and `show` its result (with --json,
    print its wire form); the result, for the exit code."""

    async def ask() -> dict[str, Any]:
        target = cli_gateway.chosen_target(gateway)
        async with open_client(target, gateway.token) as client:
            return await call(client)

    with guarded(as_json):
        result = run(ask())
    _answer(result, as_json, show)
    return result


@sessions_app.command("history")
@gateway_options
def sessions_history(
    key: Annotated[str, typer.Argument(help="Session key.")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    before: Annotated[int | None, typer.Option(help="Only messages before this seq.")] = None,
    archived: ArchivedOption = False,
    *,
    gateway: GatewayChoice,
    as_json: JsonOption = False,
) -> None:
    """Print a session's transcript from the running gateway."""

    _through(gateway, as_json, _print_history,
             lambda client: client.history(key, limit=limit, before=before,
                                           follow_alias=not archived))  # fmt: skip


def _print_history(result: dict[str, Any]) -> None:
    table = Table("seq", "role", "content", "at", title=result["sessionKey"])
    for m in result["messages"]:
        at = (m["createdAt"] or "")[:19]
        recovered = (m.get("meta") or {}).get("recoveredFrom")
        if recovered:
            at += f" (recovered from {recovered})"
        table.add_row(str(m["seq"]), m["role"], m["content"], at)
    out.print(table)


# ---------------------------------------------------------------- send / spawn


@app.command()
@gateway_options
def send(
    key: Annotated[str, typer.Argument(help="Session key to address.")],
    message: Annotated[str, typer.Argument(help="Message text.")],
    timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait (0: do not wait).")] = 30,
    must_exist: Annotated[
        bool, typer.Option("--must-exist", help="Refuse unless the session already exists.")
    ] = False,
    *,
    gateway: GatewayChoice,
    as_json: JsonOption = False,
) -> None:
    """Send a message to a session through the running gateway and print the reply."""

    result = _through(gateway, as_json, _print_send,
                      lambda client: client.send(key, message, timeout_seconds=timeout,
                                                 must_exist=must_exist))  # fmt: skip
    if result["status"] == "error":
        raise typer.Exit(1)


def _print_send(result: dict[str, Any]) -> None:
    for warning in result.get("warnings", []):
        err.print(f"[yellow]warning[/] {escape(str(warning))}", highlight=False)
    out.print(f"[bold]{result['status']}[/] {result['sessionKey']} run {result['runId']}")
    if "reply" in result:
        out.print(result["reply"], markup=False, highlight=False)
    error = result.get("error")
    if result["status"] == "error" and isinstance(error, dict):
        message = error.get("message") or "the run did not finish"
        err.print(f"[bold red]error[/] [{error.get('code')}] {escape(message)}", highlight=False)


@app.command()
@gateway_options
def spawn(
    agent: Annotated[str, typer.Argument(help="Agent id of the sub-agent.")],
    task: Annotated[str, typer.Argument(help="What the sub-agent should do.")],
    label: Annotated[str | None, typer.Option(help="Label for the child session.")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent session key.")] = None,
    *,
    gateway: GatewayChoice,
    as_json: JsonOption = False,
) -> None:
    """Start a sub-agent in a fresh session; prints its key and run id."""

    def show(result: dict[str, Any]) -> None:
        out.print(f"[bold]{result['status']}[/] {result['childSessionKey']} run {result['runId']}")

    _through(
        gateway, as_json, show,
        lambda client: client.spawn(agent, task, label=label, parent_session_key=parent),
    )  # fmt: skip


@app.command()
def doctor(
    fix: Annotated[
        bool, typer.Option("--fix", help="Repair: merge phantoms, archive, alias. Never deletes.")
    ] = False,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find phantom sessions and split brains (read-only unless --fix); exit 1 on findings."""
    from sessiongate.cli_doctor import run_doctor
    from sessiongate.config import load_config

    with guarded(as_json):
        config = load_config(config_path)
        say_direct(config)
        remaining = run(run_doctor(config, fix, as_json, out, err))
    if remaining:
        raise typer.Exit(1)


@audit_app.command("tail")
def audit_tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="Events to show.")] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the last audit events readably (--json: one JSON object per line)."""
    from sessiongate.cli_doctor import tail_audit
    from sessiongate.config import load_config

    with guarded(as_json):
        config = load_config(config_path)
        tail_audit(config.audit_path, lines, follow, as_json, out)


@storage_app.command("migrate")
def storage_migrate(
    source: Annotated[str, typer.Option("--from", help="Store to copy from (storage.url form).")],
    target: Annotated[str, typer.Option("--to", help="Store to copy into (storage.url form).")],
    force: Annotated[
        bool, typer.Option("--force", help="Copy even while a gateway serves from the source.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Copy every session and transcript, e.g. from SQLite to PostgreSQL (re-runnable)."""
    from rich.progress import Progress

    from sessiongate.config import StorageConfig
    from sessiongate.store.migrate import migrate

    with guarded(as_json):
        for url in (source, target):
            _check_storage_url(StorageConfig, url)
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("copying sessions", total=None)
            report = run(migrate(source, target, lambda n: progress.update(task, total=n),
                                 lambda _: progress.advance(task), force=force))  # fmt: skip
    if as_json:
        emit_json({"ok": True, "result": report.to_wire()})
        return
    table = Table(
        "sessions", "copied", "already there", "messages copied", title=f"{source} → {target}"
    )
    table.add_row(*(str(v) for v in report.to_wire().values()))
    out.print(table)


def _check_storage_url(model: Any, url: str) -> None:
    from pydantic import ValidationError

    try:
        model(url=url)
    except ValidationError as exc:
        raise InvalidRequestError(
            f"{url!r} is not a store URL: {plain_message(exc.errors()[0]['msg'])}",
            details={"hint": "sqlite:///path.db, sqlite:////abs/path.db or postgresql://…"},
        ) from None


@app.command()
def demo(as_json: JsonOption = False) -> None:
    """Replay the split-brain incident in permissive and strict mode, in-process."""
    from rich.console import Console

    from sessiongate.demo import render_report, replay_incident

    with guarded(as_json), err.status("replaying the incident on two temporary gateways…"):
        report = run(replay_incident())
    if as_json:
        emit_json(report)
    else:
        render_report(report, Console())


def main() -> None:
    """Entry point of the `sessiongate` script."""
    app()
