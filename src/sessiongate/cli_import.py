"""`sessiongate import openclaw`: bring an OpenClaw store over, with progress and a summary.

The importer and the store load when the command runs, not when the CLI starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sessiongate.cli_output import ConfigOption, JsonOption, emit_json, err, guarded, out, run

if TYPE_CHECKING:
    from rich.console import Console

    from sessiongate.config import SessionGateConfig
    from sessiongate.openclaw.importer import ImportReport
    from sessiongate.store import SessionStore

__all__ = ["import_app"]

import_app = typer.Typer(help="Bring sessions over from another system.", no_args_is_help=True)


@import_app.command("openclaw")
def import_openclaw(
    state_dir: Annotated[
        Path, typer.Argument(help="OpenClaw state dir (the folder that holds agents/).")
    ] = Path("~/.openclaw"),
    agent: Annotated[
        str | None, typer.Option("--agent", help="Only this agent's sessions.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and count everything; write nothing.")
    ] = False,
    allow_outside: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-outside",
            help="Also read transcripts in this folder when the index points outside the "
            "source folder (by an absolute path, '..' or a symlink); repeatable.",
        ),
    ] = None,
    include_deleted: Annotated[
        bool,
        typer.Option(
            "--include-deleted", help="Import sessions deleted here too (skipped by default)."
        ),
    ] = False,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import OpenClaw's sessions and transcripts into the configured store (re-runnable).

    Never writes to the OpenClaw folder, never reads outside it (unless --allow-outside
    names a folder). Damaged transcripts — invalid JSON, numbers or times out of range,
    content that is not text — are reported by path and line and skipped; exit 1 when
    anything was skipped, 0 otherwise.
    """
    from sessiongate.config import load_config

    with guarded(as_json):
        config = load_config(config_path)
        options = _Options(agent, dry_run, as_json, tuple(allow_outside or ()), include_deleted)
        report = run(_import(config, state_dir.expanduser(), options))
    if as_json:
        emit_json({"ok": True, "result": report.to_wire()})
    else:
        print_report(report, config.storage_url, out)
    if report.problems:
        raise typer.Exit(1)


@dataclass(frozen=True, slots=True)
class _Options:
    agent: str | None
    dry_run: bool
    quiet: bool
    allow_outside: tuple[Path, ...]
    include_deleted: bool = False


async def _import(config: SessionGateConfig, state_dir: Path, options: _Options) -> ImportReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sessiongate.openclaw.importer import OpenClawImporter

    deadline = config.storage.timeout_seconds
    store = await _open_target(config.storage_url, options.dry_run, deadline)
    columns = (TextColumn("importing {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    try:
        with Progress(*columns, console=err, transient=True, disable=options.quiet) as progress:
            task = progress.add_task("OpenClaw sessions", total=None)
            importer = OpenClawImporter(
                store,
                config,
                dry_run=options.dry_run,
                started=lambda total: progress.update(task, total=total),
                advance=lambda agent_id: progress.update(task, advance=1, description=agent_id),
                allow_outside=options.allow_outside,
                include_deleted=options.include_deleted,
            )
            return await importer.run(state_dir, options.agent)
    finally:
        await store.close()


async def _open_target(url: str, dry_run: bool, deadline: float) -> SessionStore:
    """The configured store (with storage.timeoutSeconds as its deadline); for a dry run into
    a SQLite file that does not exist, none at all."""
    from sessiongate.store import MemorySessionStore, open_store
    from sessiongate.store.sqlite import sqlite_path

    if dry_run and url.startswith("sqlite:///") and not sqlite_path(url).exists():
        return MemorySessionStore()
    return await open_store(url, deadline)


def print_report(report: ImportReport, target: str, console: Console) -> None:
    """The summary table, then every problem and orphan."""
    from rich.table import Table

    verb = "would import" if report.dry_run else "imported"
    table = Table(
        "agent", "index entries", "new sessions", "updated", "already there", "skipped",
        f"messages {verb}", "deleted here", title=f"{report.state_dir} → {target}",
    )  # fmt: skip
    for agent, tally in report.agents.items():
        table.add_row(agent, *(str(v) for v in tally.to_wire().values()))
    console.print(table)
    for p in report.problems:  # one line each, so a path stays whole for copy and grep
        session = f" ({p.session_key})" if p.session_key else ""
        console.print(f"[red]skipped[/] {p.where}{session}: {p.reason}", highlight=False)
    for orphan in report.orphans:
        console.print(f"[yellow]not imported[/] {orphan}: no index entry points to it",
                      highlight=False)  # fmt: skip
    if report.sidecars_ignored:
        console.print(
            f"{report.sidecars_ignored} sidecar file(s) ignored (trajectories, checkpoints)"
        )
    console.print(
        f"{report.messages} message(s) {verb} in {report.seconds:.2f}s "
        f"({report.messages_per_second:,.0f}/s); {len(report.problems)} problem(s)"
    )
    if report.problems:
        console.print(
            "fix the files named above and run the import again: nothing is imported twice"
        )
