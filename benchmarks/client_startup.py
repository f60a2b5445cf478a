"""What a client pays to start: whole-process wall times, median of several runs.

.venv/bin/python -m benchmarks.client_startup [--runs 7]

- ``python -c "import sessiongate.client"`` (target ≤ 150 ms on an idle machine),
- ``sessiongate --version`` (target ≤ 400 ms),
- ``sessiongate send main hi`` to a gateway running on this machine (target ≤ 600 ms),

each beside ``python -c pass``, the interpreter's own start. The figures are the
process as a user sees it: interpreter start, imports, config, the request, exit,
in milliseconds; on a loaded machine read the CPU column (user + system).
tests/test_import_boundaries.py keeps the imports behind these numbers in place.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import TOKEN, free_port, gateway_command, print_table, process

TARGETS_MS = {"import sessiongate.client": 150, "sessiongate --version": 400,
              "sessiongate send": 600}  # fmt: skip


def timed_ms(command: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) milliseconds of `command`, once unmeasured, then `runs` times.

    On a busy machine the wall time waits for a core; the CPU time is what the same
    run costs on an idle one.
    """
    walls, cpus = [], []
    for i in range(runs + 1):
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        wall = (time.perf_counter() - started) * 1000
        child.returncode = os.waitstatus_to_exitcode(status)
        assert child.returncode == 0, f"{command} exited {child.returncode}"
        if i:  # the first run warms the file cache and the bytecode
            walls.append(wall)
            cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    cli = str(Path(sys.executable).with_name("sessiongate"))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SESSIONGATE_STATE_DIR": tmp, "SESSIONGATE_TOKEN": TOKEN}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "import sessiongate.client": [sys.executable, "-c", "import sessiongate.client"],
            "sessiongate --version": [cli, "--version"],
            "sessiongate send": [cli, "send", "--url", url, "main", "hi"],
        }
        with process(gateway_command(Path(tmp), port, create_on_miss=True), url):
            samples = {name: timed_ms(command, runs, env) for name, command in commands.items()}
    rows = [
        (name, f"{statistics.median(wall):.0f}", f"{min(wall):.0f}", f"{max(wall):.0f}",
         f"{statistics.median(cpu):.0f}", str(TARGETS_MS.get(name, "")))
        for name, (wall, cpu) in samples.items()
    ]  # fmt: skip
    header = ("command", "wall median", "wall min", "wall max", "cpu median", "target (wall)")
    print_table(f"client start-up, whole process, ms ({runs} runs)", rows, header)


if __name__ == "__main__":
    main()
