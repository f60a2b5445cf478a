"""Where a gateway spends its CPU under fire-and-forget load: py-spy on `sessiongate serve`.

Samples only while a thread holds the GIL (the gateway is CPU-bound on one core),
then prints the functions that take the largest share, inclusive of callees.

Run: .venv/bin/python -m benchmarks.profile_sends [--sends N] [--clients C] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from rich.markup import escape

from benchmarks._common import TOKEN, console, free_port, gateway_command, print_table, process
from benchmarks._loadgen import hammer, render


def summarise(raw: Path, top: int) -> list[tuple[str, str]]:
    """Inclusive share of samples per function, from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        names = {frame.split(" (")[0] + _where(frame) for frame in stack.split(";")[1:]}
        for name in names:
            inclusive[name] += int(count)
    below_entry = [(name, n) for name, n in inclusive.most_common() if n < 0.9 * total]
    return [(f"{n / total:.1%}", escape(name)) for name, n in below_entry[:top]]


def _where(frame: str) -> str:
    path = frame.split("(", 1)[1].split(":")[0] if "(" in frame else ""
    return f"  ({path.split('site-packages/')[-1].split('/src/')[-1]})"


async def profile(sends: int, clients: int, seconds: int, top: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(gateway_command(tmp, port, None, create_on_miss=True), url) as gateway:
            spy_bin = Path(sys.executable).parent / "py-spy"
            raw = tmp / "profile.txt"
            spy = subprocess.Popen(
                [str(spy_bin), "record", "-p", str(gateway.pid), "-o", str(raw), "-f", "raw",
                 "-r", "250", "-d", str(seconds), "--threads", "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(0.5)

            def make(i: int) -> bytes:
                args = {"sessionKey": f"agent:atlas:cron:job-{i % 16}", "message": "x",
                        "timeoutSeconds": 0}  # fmt: skip
                body = {"tool": "sessions_send", "args": args}
                return render("127.0.0.1", port, "/tools/invoke", body, TOKEN)

            rate = await hammer("127.0.0.1", port, make, sends, clients)
            spy.wait(timeout=seconds + 30)
            rows = summarise(raw, top)
    console.print(f"{rate:,.0f} sends/s while profiled (py-spy slows the gateway)")
    print_table("share of GIL-holding samples, inclusive", rows, ("share", "function"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=12000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(profile(args.sends, args.clients, args.seconds, args.top))
