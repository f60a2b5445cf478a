"""What `sessiongate doctor` and `sessiongate audit tail` print."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from sessiongate.audit import open_audit
from sessiongate.config import SessionGateConfig
from sessiongate.doctor import Finding, RepairResult, repair, scan
from sessiongate.gateway import Gateway

__all__ = ["run_doctor", "tail_audit"]

FOLLOW_INTERVAL_SECONDS = 0.5


async def run_doctor(
    config: SessionGateConfig, fix: bool, as_json: bool, out: Console, err: Console
) -> list[Finding]:
    """Scan (and with `fix`, repair then rescan); print; return what is still wrong."""
    gateway = await Gateway.open(config, serving=False)
    try:
        findings = await _scan_with_progress(gateway, err)
        repaired = await repair(gateway, findings) if fix else []
        remaining = await scan(gateway) if fix else findings
    finally:
        await gateway.close()
    if as_json:
        body = {
            "healthy": not remaining,
            "findings": [f.to_wire() for f in findings],
            "repaired": [r.to_wire() for r in repaired],
            "remaining": [f.to_wire() for f in remaining],
        }
        out.print_json(json.dumps(body))
    else:
        _print_report(findings, repaired, remaining, fix, out)
    return remaining


async def _scan_with_progress(gateway: Gateway, err: Console) -> list[Finding]:
    total = await gateway.store.count_sessions()
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("scanning sessions", total=total)
        return await scan(gateway, lambda _: progress.advance(task))


def _print_findings(findings: list[Finding], out: Console) -> None:
    """One block per finding, the key whole on its own line (never cut to the terminal width,
    so it can be copied)."""
    for number, f in enumerate(findings, 1):
        out.print(f"[bold]{number}. {f.kind}[/] {escape(f.session_key)}", highlight=False)
        out.print(f"   why: {escape(f.reason)}", highlight=False)
        for line in _evidence_text(f.evidence).splitlines():
            out.print(f"   {escape(line)}", highlight=False)
        out.print(f"   fix: {escape(f.fix)}", highlight=False)


def _evidence_text(evidence: dict[str, Any]) -> str:
    if not evidence:
        return ""
    lines = [f"created by {evidence['createdBy']}"]
    if "firstMessage" in evidence:
        at = str(evidence.get("firstMessageAt") or "")[:19].replace("T", " ")
        lines.append(f"first message {at}: {evidence['firstMessage']!r}")
    return "\n".join(lines)


def _print_report(
    findings: list[Finding],
    repaired: list[RepairResult],
    remaining: list[Finding],
    fix: bool,
    out: Console,
) -> None:
    if findings:
        _print_findings(findings, out)
    for r in repaired:
        out.print(
            f"[green]repaired[/] {r.session_key} → {r.canonical_key}: "
            f"{r.copied} message(s) recovered, archived, aliased"
        )
    if not remaining:
        out.print("[green]healthy[/]: no phantom sessions, no split brains")
    elif not fix:
        out.print(
            f"[yellow]{len(remaining)} finding(s)[/]; `sessiongate doctor --fix` repairs "
            "the fixable ones without deleting anything"
        )
    else:
        out.print(f"[yellow]{len(remaining)} finding(s) need a person[/]")


def describe_event(event: dict[str, Any]) -> str:
    """One audit event as one readable line."""
    caller = (event.get("caller") or {}).get("sessionKey") or "operator"
    parts = [str(event.get("time", ""))[:19], f"{event.get('decision', '?'):9}"]
    if event.get("decision") == "repaired":
        parts.append(
            f"{event.get('sessionKey')} → {event.get('canonicalKey')} "
            f"({event.get('copied')} message(s))"
        )
        return "  ".join(parts)
    if event.get("decision") == "auth-failed":
        surfaces = ", ".join(event.get("surfaces") or [])
        parts.append(f"{event.get('failures')} failed from {event.get('client')} ({surfaces})")
        return "  ".join(parts)
    parts.append(f"{event.get('requestedKey')!r} by {caller}")
    if event.get("rule"):
        parts.append(f"rule {event['rule']}")
    if event.get("suggestions"):
        parts.append("suggest " + ", ".join(event["suggestions"]))
    if event.get("lint"):
        parts.append("lint: " + "; ".join(event["lint"]))
    return "  ".join(parts)


def _print_events(lines: list[str], as_json: bool, out: Console) -> None:
    for line in lines:
        if not line.strip():
            continue
        if as_json:
            print(line.strip(), flush=True)
            continue
        try:
            out.print(describe_event(json.loads(line)), markup=False, highlight=False)
        except ValueError:
            out.print(f"(unreadable audit line) {line.strip()[:200]}", markup=False)


def tail_audit(path: Path, count: int, follow: bool, as_json: bool, out: Console) -> None:
    """Print the last `count` events, then (with `follow`) new ones as they are written."""
    try:
        with open_audit(path) as file:  # never through a symlink, as it is written
            text = file.read().decode("utf-8", "replace")
    except FileNotFoundError:
        text = ""
    lines = text.splitlines()
    _print_events(lines[-count:] if count else [], as_json, out)
    if not follow:
        if not path.exists() and not as_json:
            out.print(f"no audit events yet ({path})")
        return
    _follow(path, len(text.encode()), as_json, out)


def _follow(path: Path, offset: int, as_json: bool, out: Console) -> None:
    inode = path.stat().st_ino if path.exists() else None
    try:
        while True:
            time.sleep(FOLLOW_INTERVAL_SECONDS)
            if not path.exists():
                continue
            stat = path.stat()
            if stat.st_ino != inode or stat.st_size < offset:  # rotated: start the new file
                inode, offset = stat.st_ino, 0
            with open_audit(path) as file:
                file.seek(offset)
                chunk = file.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            _print_events(complete.decode("utf-8").splitlines(), as_json, out)
    except KeyboardInterrupt:
        return
