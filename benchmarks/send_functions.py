"""How many project functions one warm send walks: HTTP ``POST /tools/invoke sessions_send``.

    .venv/bin/python -m benchmarks.send_functions [--warm 50] [--wait 0]

Serves a SQLite gateway in this process, warms it with `--warm` sends to the same
session, then records every sessiongate function called (in the event loop's thread
and the store's thread) while one more send is answered. ``--wait 0`` (the default)
is fire-and-forget: the request's path; a positive wait includes the run and its reply.
Prints the distinct functions and modules, and the functions by module.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from benchmarks._common import TOKEN, console, print_table
from sessiongate.config import parse_config
from sessiongate.server.app import run_gateway

PACKAGE = str(Path(__import__("sessiongate").__file__).parent)


class FunctionRecorder:
    """Collects the sessiongate functions called while `on` (a profile hook per thread)."""

    def __init__(self) -> None:
        self.on = False
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if self.on and event == "call":
            code = frame.f_code
            if code.co_filename.startswith(PACKAGE):
                module = code.co_filename[len(PACKAGE) + 1 :].removesuffix(".py")
                self.seen.add((module.replace("/", "."), code.co_qualname))


def _config(tmp: Path) -> Any:
    return parse_config(
        {
            "gateway": {"auth": {"token": TOKEN}, "sessions": {"createOnMiss": True}},
            "storage": {"url": f"sqlite:///{tmp / 'state.db'}"},
            "audit": {"path": str(tmp / "audit.jsonl")},
            "agents": {"list": [{"id": "atlas", "default": True}]},
        },
        "benchmark",
    )


async def measure(warm: int, wait: float) -> FunctionRecorder:
    recorder = FunctionRecorder()
    threading.setprofile(recorder)  # the store's thread starts inside run_gateway
    with tempfile.TemporaryDirectory() as name:
        async with run_gateway(_config(Path(name)), TOKEN) as running:
            headers = {"authorization": f"Bearer {TOKEN}"}
            args = {"sessionKey": "agent:atlas:cron:job", "message": "x", "timeoutSeconds": wait}
            body = {"tool": "sessions_send", "args": args}
            async with httpx.AsyncClient(base_url=running.url, headers=headers) as client:
                for _ in range(warm):
                    (await client.post("/tools/invoke", json=body)).raise_for_status()
                await _settled(running.gateway)
                sys.setprofile(recorder)
                recorder.on = True
                response = await client.post("/tools/invoke", json=body)
                recorder.on = False
                sys.setprofile(None)
                response.raise_for_status()
    threading.setprofile(None)  # type: ignore[arg-type]
    return recorder


async def _settled(gateway: Any) -> None:
    """Wait until no run of the warm-up is still going (so none is counted)."""
    while gateway.runs._active:
        await asyncio.sleep(0.01)


def main(warm: int, wait: float) -> None:
    recorder = asyncio.run(measure(warm, wait))
    modules = Counter(module for module, _ in recorder.seen)
    console.print(
        f"one warm send (wait {wait:g} s): {len(recorder.seen)} sessiongate functions "
        f"in {len(modules)} modules"
    )
    rows = [
        (module, str(count), ", ".join(sorted(f for m, f in recorder.seen if m == module)))
        for module, count in modules.most_common()
    ]
    print_table("functions by module", rows, ("module", "functions", "names"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--wait", type=float, default=0)
    args = parser.parse_args()
    main(args.warm, args.wait)
