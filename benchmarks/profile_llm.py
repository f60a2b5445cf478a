"""Where an LLM turn spends the gateway's CPU, and what a change to it saves.

Profile (default): py-spy on `sessiongate serve` while one client makes sequential waiting
`sessions_send`s to an agent on the instant fake model (`benchmarks/fake_openai.py`), as the
floor benchmark's LLM row does.

A/B (`--base SRC`): this checkout's gateway against one served from another checkout's `src`
(through PYTHONPATH), both on the same fake model, in alternating rounds of sequential sends
to the echo agent and to the LLM agent: the gateway's CPU per send (`/proc/<pid>/stat`) and
p50, medians of the rounds, and the LLM turn's extra over the echo turn on each side.

Run: .venv/bin/python -m benchmarks.profile_llm [--sends N] [--seconds S]
     .venv/bin/python -m benchmarks.profile_llm --base /work/base/src [--rounds R] [--sends N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._common import (
    console,
    cpu_seconds,
    free_port,
    print_table,
    process,
    uvicorn_command,
)
from benchmarks._loadgen import sequential
from benchmarks.floor import HOST, gateway_config, send_request, serve_command
from benchmarks.profile_sends import ab_arguments, print_shares, recording

KEYS = {"echo": "agent:atlas:main", "llm": "agent:llm:main"}


@dataclass
class Side:
    name: str
    port: int
    pid: int = 0
    p50_ms: dict[str, list[float]] = field(default_factory=lambda: {"echo": [], "llm": []})
    cpu_us: dict[str, list[float]] = field(default_factory=lambda: {"echo": [], "llm": []})


@contextmanager
def serving(tmp: Path, src: Path | None, name: str, model_port: int) -> Iterator[Side]:
    """A gateway with the floor's config (an echo agent, an LLM agent on the fake model)."""
    port = free_port()
    env = {"PYTHONPATH": str(src)} if src is not None else {}
    config = gateway_config(tmp, port, model_port, None)
    with process(serve_command(config), f"http://{HOST}:{port}", env) as proc:
        yield Side(name, port, proc.pid)


@contextmanager
def fake_model() -> Iterator[int]:
    port = free_port()
    with process(uvicorn_command("benchmarks.fake_openai:app", port), f"http://{HOST}:{port}"):
        yield port


async def sends(side: Side, agent: str, count: int) -> list[float]:
    return await sequential(HOST, side.port, send_request(side.port, None, [KEYS[agent]]), count)


async def measure(side: Side, agent: str, count: int) -> None:
    before = cpu_seconds(side.pid)
    samples = sorted(await sends(side, agent, count))
    side.cpu_us[agent].append((cpu_seconds(side.pid) - before) / count * 1e6)
    side.p50_ms[agent].append(1000 * samples[len(samples) // 2])


async def ab(base: Path, new: Path | None, rounds: int, count: int) -> None:
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        tmp = Path(name)
        model_port = stack.enter_context(fake_model())
        sides = [
            stack.enter_context(serving(tmp, base, "base", model_port)),
            stack.enter_context(serving(tmp, new, "new", model_port)),
        ]
        for side in sides:  # sessions, lazy imports, the model client: nothing counted
            for agent in KEYS:
                await sends(side, agent, 200)
        for index in range(rounds):
            order = sides if index % 2 == 0 else sides[::-1]
            for side in order:
                for agent in ("echo", "llm") if index % 4 < 2 else ("llm", "echo"):
                    await measure(side, agent, count)
    rows = []
    for side in sides:
        cpu = {agent: statistics.median(v) for agent, v in side.cpu_us.items()}
        p50 = {agent: statistics.median(v) for agent, v in side.p50_ms.items()}
        pairs = zip(side.p50_ms["llm"], side.p50_ms["echo"], strict=True)
        extra = [llm - echo for llm, echo in pairs]
        rows.append((
            side.name, f"{cpu['echo']:.0f}", f"{cpu['llm']:.0f}",
            f"{cpu['llm'] - cpu['echo']:.0f}", f"{p50['echo']:.3f}", f"{p50['llm']:.3f}",
            f"{statistics.median(extra):.3f}",
        ))  # fmt: skip
        console.print(
            f"{side.name}: LLM CPU µs per round "
            + " ".join(f"{v:.0f}" for v in side.cpu_us["llm"])
            + "; p50 extra ms per round "
            + " ".join(f"{v:.2f}" for v in extra)
        )
    header = ("side", "CPU µs echo", "CPU µs LLM", "CPU extra", "p50 echo ms", "p50 LLM ms",
              "p50 extra ms")  # fmt: skip
    print_table(f"LLM turns: {rounds} alternating rounds of {count} sends", rows, header)
    base, new = (side.cpu_us["llm"] for side in sides)
    paired = [n - b for b, n in zip(base, new, strict=True)]
    lower = sum(d < 0 for d in paired)
    console.print(f"CPU per LLM turn, new - base per round: median {statistics.median(paired):+.0f}"
                  f" µs, new lower in {lower} of {len(paired)} rounds")  # fmt: skip
    console.print(f"load average {os.getloadavg()[0]:.1f}")


async def profile(
    src: Path | None, count: int, seconds: int, top: int, keep: Path | None, flags: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        model_port = stack.enter_context(fake_model())
        side = stack.enter_context(serving(Path(name), src, "new", model_port))
        await sends(side, "llm", 200)
        raw = Path(name) / "profile.txt"
        async with recording(side.pid, raw, seconds, 500, flags, keep):
            samples = sorted(await sends(side, "llm", count))
        p50 = samples[len(samples) // 2]
        console.print(f"p50 {p50 * 1000:.3f} ms per LLM send while profiled (py-spy slows it)")
        print_shares(raw, top)


if __name__ == "__main__":
    parser = ab_arguments(__doc__, rounds=8, seconds=8, top=70)
    parser.add_argument("--sends", type=int, default=None)
    args = parser.parse_args()
    if args.base is not None:
        asyncio.run(ab(args.base, args.new, args.rounds, args.sends or 400))
    else:
        flags = [] if args.no_gil else ["--gil"]
        asyncio.run(profile(args.new, args.sends or 4000, args.seconds, args.top, args.keep, flags))
