"""Where a WebSocket `agent` turn spends its CPU, and what a change to it saves.

Profile (default): py-spy on `sessiongate serve` while one client makes sequential `agent`
turns on `/ws`, exactly as the floor benchmark's client does (`benchmarks.floor.p50_ws`).

A/B (`--base SRC`): this checkout's gateway against one served from another checkout's
`src` (through PYTHONPATH), side by side with the bare starlette echo, in alternating
rounds: p50 per turn and the gateway's CPU per turn (`/proc/<pid>/stat`), medians.

Run: .venv/bin/python -m benchmarks.profile_ws [--turns N] [--seconds S]
     .venv/bin/python -m benchmarks.profile_ws --base /work/base/src [--rounds R] [--turns N]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from benchmarks._common import TOKEN, console, cpu_seconds, free_port, print_table, process
from benchmarks.floor import HOST, gateway_config, p50_ws, serve_command
from benchmarks.profile_sends import ab_arguments, print_shares, recording


@dataclass
class Side:
    name: str
    port: int
    pid: int = 0
    p50_ms: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


@contextmanager
def serving(tmp: Path, src: Path | None, name: str) -> Iterator[Side]:
    """A gateway with the floor's config, from this checkout or from `src`."""
    port = free_port()
    env = {"PYTHONPATH": str(src)} if src is not None else {}
    config = gateway_config(tmp, port, free_port(), None)
    with process(serve_command(config), f"http://{HOST}:{port}", env) as proc:
        yield Side(name, port, proc.pid)


async def opened(side: Side) -> ClientConnection:
    ws = await connect(f"ws://{HOST}:{side.port}/ws", compression=None)
    await ws.send(json.dumps({"type": "req", "id": -1, "method": "connect",
                              "params": {"token": TOKEN}}))  # fmt: skip
    assert json.loads(await ws.recv())["ok"]
    return ws


async def measure(ws: ClientConnection, side: Side, method: str, turns: int) -> None:
    before = cpu_seconds(side.pid)
    side.p50_ms.append(1000 * await p50_ws(ws, method, turns))
    side.cpu_us.append((cpu_seconds(side.pid) - before) / turns * 1e6)


async def ab(base: Path, new: Path | None, rounds: int, turns: int) -> None:
    from benchmarks._common import uvicorn_command

    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        tmp = Path(name)
        sides = [
            stack.enter_context(serving(tmp, base, "base")),
            stack.enter_context(serving(tmp, new, "new")),
        ]
        echo = Side("echo", free_port())
        command = uvicorn_command("benchmarks.bare_starlette:app", echo.port)
        echo.pid = stack.enter_context(process(command, f"http://{HOST}:{echo.port}")).pid
        clients = [await opened(s) for s in sides]
        echo_ws = await connect(f"ws://{HOST}:{echo.port}/ws", compression=None)
        for ws in clients:
            await p50_ws(ws, "agent", 200)
        await p50_ws(echo_ws, "echo", 200)
        for index in range(rounds):
            order = [0, 1] if index % 2 == 0 else [1, 0]
            for i in order:
                await measure(clients[i], sides[i], "agent", turns)
            await measure(echo_ws, echo, "echo", turns)
        for ws in [*clients, echo_ws]:
            await ws.close()
    rows = []
    for side in [*sides, echo]:
        p50, cpu = statistics.median(side.p50_ms), statistics.median(side.cpu_us)
        ratio = p50 / statistics.median(echo.p50_ms)
        rounds_text = "  ".join(f"{v:.0f}" for v in side.cpu_us)
        p50_text = "  ".join(f"{v * 1000:.0f}" for v in side.p50_ms)
        rows.append((side.name, f"{p50:.3f}", f"{ratio:.2f}x", f"{cpu:.0f}", rounds_text, p50_text))
    header = ("server", "p50 ms", "vs echo", "CPU µs/turn", "CPU per round", "p50 µs per round")
    print_table(f"WS turns: {rounds} alternating rounds of {turns}", rows, header)
    console.print(f"load average {os.getloadavg()[0]:.1f}")


async def profile(
    src: Path | None, turns: int, seconds: int, top: int, keep: Path | None, flags: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as name, serving(Path(name), src, "new") as side:
        ws = await opened(side)
        await p50_ws(ws, "agent", 200)
        raw = Path(name) / "profile.txt"
        async with recording(side.pid, raw, seconds, 500, flags, keep):
            p50 = await p50_ws(ws, "agent", turns)
        await ws.close()
        console.print(f"p50 {p50 * 1000:.3f} ms per turn while profiled (py-spy slows the gateway)")
        print_shares(raw, top)


if __name__ == "__main__":
    parser = ab_arguments(__doc__, rounds=6, seconds=6, top=60)
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--native", action="store_true", help="C frames too (uvloop, sqlite)")
    args = parser.parse_args()
    if args.base is not None:
        asyncio.run(ab(args.base, args.new, args.rounds, args.turns or 1000))
    else:
        flags = [*([] if args.no_gil else ["--gil"]), *(["--native"] if args.native else [])]
        asyncio.run(profile(args.new, args.turns or 8000, args.seconds, args.top, args.keep, flags))
