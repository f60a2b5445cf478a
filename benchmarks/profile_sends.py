"""Where a gateway spends its CPU under fire-and-forget load: py-spy on `sessiongate serve`.

Samples only while a thread holds the GIL (the gateway is CPU-bound on one core),
then prints the functions that take the largest share, inclusive of callees.

Run: .venv/bin/python -m benchmarks.profile_sends [--sends N] [--clients C] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
from argparse import ArgumentParser
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from rich.markup import escape

from benchmarks._common import (
    TOKEN,
    console,
    free_port,
    gateway_command,
    postgres_schema,
    print_table,
    process,
)
from benchmarks._loadgen import hammer, render


def summarise(raw: Path, top: int, own: bool = False) -> list[tuple[str, str]]:
    """Share of samples per function, from py-spy's collapsed stacks: inclusive of callees,
    or (`own`) only where the function itself was running."""
    shares: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        frames = stack.split(";")[1:]
        if own and not frames:  # a thread caught outside Python code (`--nonblocking`)
            continue
        if own:
            shares[frames[-1].split(" (")[0] + _where(frames[-1])] += int(count)
            continue
        for name in {frame.split(" (")[0] + _where(frame) for frame in frames}:
            shares[name] += int(count)
    below_entry = [(name, n) for name, n in shares.most_common() if own or n < 0.9 * total]
    return [(f"{n / total:.1%}", escape(name)) for name, n in below_entry[:top]]


def _where(frame: str) -> str:
    path = frame.split("(", 1)[1].split(":")[0] if "(" in frame else ""
    return f"  ({path.split('site-packages/')[-1].split('/src/')[-1]})"


async def profile(
    sends: int,
    clients: int,
    seconds: int,
    top: int,
    gil: bool = True,
    keep: Path | None = None,
    postgres: bool = False,
    nonblocking: bool = False,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        storage = await stack.enter_async_context(postgres_schema("sg_prof")) if postgres else None
        await _profile(sends, clients, seconds, top, gil, keep, storage, nonblocking)


async def _profile(
    sends: int,
    clients: int,
    seconds: int,
    top: int,
    gil: bool,
    keep: Path | None,
    storage: str | None,
    nonblocking: bool,
) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(gateway_command(tmp, port, storage, create_on_miss=True), url) as gateway:
            raw = tmp / "profile.txt"
            flags = [*(["--gil"] if gil else []), *(["--nonblocking"] if nonblocking else [])]

            def make(i: int) -> bytes:
                args = {"sessionKey": f"agent:atlas:cron:job-{i % 16}", "message": "x",
                        "timeoutSeconds": 0}  # fmt: skip
                body = {"tool": "sessions_send", "args": args}
                return render("127.0.0.1", port, "/tools/invoke", body, TOKEN)

            async with recording(gateway.pid, raw, seconds, 250, flags, keep):
                rate = await hammer("127.0.0.1", port, make, sends, clients)
            console.print(f"{rate:,.0f} sends/s while profiled (py-spy slows the gateway)")
            what = "GIL-holding samples" if gil else "running threads' samples (syscalls included)"
            print_shares(raw, top, what)


@contextlib.asynccontextmanager
async def recording(
    pid: int, raw: Path, seconds: int, rate: int, flags: list[str], keep: Path | None
) -> AsyncIterator[None]:
    """py-spy records `pid` (every thread, raw collapsed stacks into `raw`) for `seconds`
    while the body loads it, started half a second before; its stacks copied to `keep`."""
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-o", str(raw),
         "-f", "raw", "-r", str(rate), "-d", str(seconds), "--threads", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(0.5)
    yield
    spy.wait(timeout=seconds + 30)
    if keep is not None:
        keep.write_bytes(raw.read_bytes())


def print_shares(raw: Path, top: int, what: str = "GIL-holding samples") -> None:
    """py-spy's collapsed stacks as two tables: inclusive shares, and own time."""
    print_table(f"share of {what}, inclusive", summarise(raw, top), ("share", "function"))
    own = summarise(raw, top // 2, own=True)
    print_table(f"share of {what}, own time", own, ("share", "function"))


def ab_arguments(description: str | None, rounds: int, seconds: int, top: int) -> ArgumentParser:
    """The options every A/B-and-profile benchmark takes (`--base` for the A/B)."""
    parser = ArgumentParser(description=description)
    parser.add_argument("--base", type=Path, help="A/B against the gateway in this src folder")
    parser.add_argument("--new", type=Path, help="serve this src folder instead of this checkout's")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--seconds", type=int, default=seconds)
    parser.add_argument("--top", type=int, default=top)
    parser.add_argument("--keep", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--no-gil", action="store_true", help="every running thread's samples")
    return parser


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=12000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument(
        "--no-gil", action="store_true", help="sample running threads, GIL or not (syscalls)"
    )
    parser.add_argument("--keep", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--postgres", action="store_true", help="a gateway on PostgreSQL")
    parser.add_argument(
        "--nonblocking",
        action="store_true",
        help="sample without stopping the gateway: a stopped process is caught at its system"
        " calls more often than elsewhere (py-spy's default mode)",
    )
    args = parser.parse_args()
    asyncio.run(
        profile(
            args.sends,
            args.clients,
            args.seconds,
            args.top,
            not args.no_gil,
            args.keep,
            args.postgres,
            args.nonblocking,
        )
    )
