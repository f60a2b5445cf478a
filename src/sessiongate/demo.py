"""`sessiongate demo`: the split-brain incident, replayed against a real gateway in both modes."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from sessiongate.client import AsyncSessionGateClient
from sessiongate.config import parse_config
from sessiongate.doctor import repair, scan
from sessiongate.errors import SessionGateError
from sessiongate.gateway import Gateway
from sessiongate.server.app import run_gateway

__all__ = ["INCIDENT_KEY", "render_report", "replay_incident"]

INCIDENT_KEY = "agent:atlas:telegram:atlas:direct:6596143250"
SENDER = "agent:peggy:main"
MESSAGE = "peggy here: the deploy is done, over to you"


def demo_config(state: Path, create_on_miss: bool) -> dict[str, Any]:
    """Two agents that may message each other, on a fresh SQLite file."""
    return {
        "gateway": {"sessions": {"createOnMiss": create_on_miss}},
        "session": {"dmScope": "main"},
        "storage": {"url": f"sqlite:///{state / 'state.db'}"},
        "audit": {"path": str(state / "audit.jsonl")},
        "tools": {
            "sessions": {"visibility": "all"},
            "agentToAgent": {"enabled": True, "allow": ["*"]},
        },
        "agents": {"list": [{"id": "atlas", "default": True}, {"id": "peggy"}]},
    }


async def replay_mode(create_on_miss: bool) -> dict[str, Any]:
    """peggy sends to the key atlas never uses; report what the gateway did."""
    with tempfile.TemporaryDirectory(prefix="sessiongate-demo-") as tmp:
        config = parse_config(demo_config(Path(tmp), create_on_miss), "demo")
        token = secrets.token_urlsafe(24)
        async with run_gateway(config, token) as running:
            client = AsyncSessionGateClient(running.url, token, session_key=SENDER)
            async with client:
                outcome = await _send(client)
                page = await client.list_sessions(agent_id="atlas")
                report = {
                    "mode": "permissive" if create_on_miss else "strict",
                    "createOnMiss": create_on_miss,
                    "sender": SENDER,
                    "requestedKey": INCIDENT_KEY,
                    "outcome": outcome,
                    "atlasSessions": [s["key"] for s in page["sessions"]],
                }
                if create_on_miss:
                    report["repair"] = await _repair(running.gateway, client)
    return report


async def _repair(gateway: Gateway, client: AsyncSessionGateClient) -> dict[str, Any]:
    """What `sessiongate doctor --fix` does to the phantom, and where its key leads afterwards."""
    findings = await scan(gateway)
    repaired = await repair(gateway, findings)
    healthy = not await scan(gateway)
    after = await client.send(INCIDENT_KEY, "peggy again: still there?")
    return {
        "findings": [f.to_wire() for f in findings],
        "repaired": [r.to_wire() for r in repaired],
        "healthyAfter": healthy,
        "phantomKeyNowReaches": after["sessionKey"],
    }


async def _send(client: AsyncSessionGateClient) -> dict[str, Any]:
    try:
        return {"ok": True, "result": await client.send(INCIDENT_KEY, MESSAGE)}
    except SessionGateError as exc:
        return exc.to_wire()


async def replay_incident() -> dict[str, Any]:
    """Both modes, permissive first."""
    return {
        "incidentKey": INCIDENT_KEY,
        "modes": [await replay_mode(True), await replay_mode(False)],
    }


def render_report(report: dict[str, Any], console: Console) -> None:
    """The replay as a short rich report."""
    console.print(
        f"[bold]The incident[/]: {SENDER} sends to [cyan]{report['incidentKey']}[/], a "
        "direct-message key atlas never uses (atlas keeps DMs in agent:atlas:main)."
    )
    for mode in report["modes"]:
        console.print(_mode_panel(mode))
        if "repair" in mode:
            console.print(_repair_panel(mode["repair"]))


def _repair_panel(repaired: dict[str, Any]) -> Panel:
    lines = [f"found: {f['kind']} {f['sessionKey']} — {f['reason']}" for f in repaired["findings"]]
    lines += [
        f"fixed: {r['copied']} message(s) copied into {r['canonicalKey']}, "
        f"{r['sessionKey']} archived and aliased"
        for r in repaired["repaired"]
    ]
    lines.append(f"healthy afterwards: {repaired['healthyAfter']}")
    lines.append(f"a send to the phantom key now reaches {repaired['phantomKeyNowReaches']}")
    return Panel(
        "\n".join(lines), title="sessiongate doctor --fix (permissive gateway)", expand=False
    )


def _mode_panel(mode: dict[str, Any]) -> Panel:
    table = Table("atlas sessions afterwards", "")
    for key in mode["atlasSessions"]:
        note = "[red]phantom: split brain[/]" if key == INCIDENT_KEY else "the real one"
        table.add_row(key, note)
    outcome = mode["outcome"]
    if outcome["ok"]:
        result = outcome["result"]
        head = f"[yellow]accepted[/]: status {result['status']}, reply {result.get('reply')!r}"
    else:
        error = outcome["error"]
        details = error["details"]
        head = (
            f"[green]refused[/]: {error['code']} ({error['type']})\n"
            f"  requestedKey: {details.get('requestedKey')}\n"
            f"  suggestions:  {', '.join(details.get('suggestions', []))}\n"
            f"  lint:         {details.get('lint')}\n"
            f"  policy:       {details.get('policy')}"
        )
    title = f"{mode['mode']} (gateway.sessions.createOnMiss: {str(mode['createOnMiss']).lower()})"

    return Panel(Group(head, table), title=title, expand=False)
