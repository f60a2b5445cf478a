"""Every benchmark in one command; prints tables, writes results, the README section and a plot.

.venv/bin/python -m benchmarks            # full run (1M sessions; several minutes)
.venv/bin/python -m benchmarks --quick    # under a minute, smaller stores
.venv/bin/python -m benchmarks --smoke --out DIR   # a few iterations (the test suite's check)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import gateway_e2e, resolver_cost, store_scaling
from benchmarks._common import (
    console,
    free_port,
    gateway_command,
    postgres_reachable,
    print_table,
    process,
    rss_mib,
)
from benchmarks.postgres_throughput import blast
from benchmarks.postgres_throughput import run as postgres_throughput
from benchmarks.report import render_readme_section, update_readme

RESULTS = Path("benchmarks/results")


@dataclass(frozen=True)
class Profile:
    resolver_calls: int
    sizes: list[int]
    scale_calls: int
    e2e_calls: int
    rounds: int
    sends: int
    postgres_sends: int


PROFILES = {
    "full": Profile(1000, [1_000, 10_000, 100_000, 1_000_000], 500, 1000, 5, 6000, 4000),
    "quick": Profile(200, [1_000, 10_000, 100_000], 200, 300, 3, 3000, 1500),
    "smoke": Profile(5, [100, 200], 5, 6, 1, 40, 40),
}


async def resolver_section(p: Profile, postgres: bool) -> dict[str, Any]:
    kinds = ["memory", "sqlite"] + (["postgres"] if postgres else [])
    results = {kind: await resolver_cost.measure(kind, p.resolver_calls) for kind in kinds}
    rows = [
        (
            k,
            path,
            f"{s['p50_us']:.1f}",
            f"{s['p95_us']:.1f}",
            f"{s['p50_us'] / r['first-hit']['p50_us']:.2f}",
        )
        for k, r in results.items()
        for path, s in r.items()
    ]
    print_table(
        "resolver cost per call", rows, ("store", "path", "p50 µs", "p95 µs", "vs first hit")
    )
    return results


async def scaling_section(p: Profile, postgres: bool, keep: Path) -> dict[str, Any]:
    results = {"sqlite": await store_scaling.sqlite_scaling(p.sizes, p.scale_calls, keep)}
    if postgres:
        results["postgres"] = await store_scaling.postgres_scaling(p.sizes, p.scale_calls)
    rows = [row for store, r in results.items() for row in store_scaling.scaling_rows(store, r)]
    print_table("store scaling (p50)", rows, ("store", "op", "sessions", "p50 µs", "vs smallest"))
    return {store: {str(size): ops for size, ops in r.items()} for store, r in results.items()}


async def throughput_section(p: Profile, postgres: bool) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as name:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(gateway_command(Path(name), port, None, create_on_miss=True), url):
            for clients in (1, 16):
                results[f"sqlite_1_process_{clients}_clients"] = await blast(
                    [url], p.sends, clients
                )
    if postgres:
        for processes in (1, 2):
            key = f"postgres_{processes}_process_32_clients"
            results[key] = await postgres_throughput(processes, p.postgres_sends, 32)
    rows = [(name, f"{value:,.0f}") for name, value in results.items()]
    print_table("fire-and-forget sessions_send throughput", rows, ("setup", "sends/s"))
    return results


async def rss_with_store(db: Path) -> dict[str, float]:
    """RSS of a gateway serving the largest SQLite store of the scaling run."""
    with tempfile.TemporaryDirectory() as name:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = gateway_command(Path(name), port, f"sqlite:///{db}", create_on_miss=True)
        with process(command, url) as gw:
            await blast([url], 200, 4)
            calls = gateway_e2e.HttpGetCaller(url, "agent:atlas:main", 200)
            for i in range(20):
                await calls(i)
                await calls.http.get("/v1/sessions", params={"agentId": "atlas", "limit": 50})
            await asyncio.sleep(0.5)
            return {"rss_mib": rss_mib(gw.pid)}


def _proc_field(path: str, name: str) -> str | None:
    lines = Path(path).read_text().splitlines() if Path(path).exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), None)


def machine() -> dict[str, Any]:
    memory_kib = int((_proc_field("/proc/meminfo", "MemTotal") or "0 kB").split()[0])
    return {
        "cpus": os.cpu_count(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        "memory_gib": round(memory_kib / 1024**2, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
    }


async def run_all(profile_name: str, out: Path) -> dict[str, Any]:
    p = PROFILES[profile_name]
    postgres = await postgres_reachable()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "profile": profile_name,
        "machine": machine(),
        "profile_settings": asdict(p),
    }
    results["resolver"] = await resolver_section(p, postgres)
    with tempfile.TemporaryDirectory() as keep:
        results["scaling"] = await scaling_section(p, postgres, Path(keep))
        results["rss_with_store"] = {
            "sessions": max(p.sizes),
            **await rss_with_store(Path(keep) / "scale.db"),
        }
    e2e = await gateway_e2e.measure(p.e2e_calls, p.rounds)
    gateway_e2e.report(p.e2e_calls, e2e)
    results["e2e"] = {"stats": e2e.stats(), "ratios": e2e.ratios(),
                      "idle_rss_mib": e2e.idle_rss, "busy_rss_mib": e2e.busy_rss}  # fmt: skip
    results["throughput"] = await throughput_section(p, postgres)
    results["seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{profile_name}.json").write_text(json.dumps(results, indent=2))
    store_scaling.plot(
        {s: {int(k): v for k, v in r.items()} for s, r in results["scaling"].items()},
        out
        / (
            "latency_vs_sessions.png"
            if profile_name == "full"
            else f"latency_vs_sessions-{profile_name}.png"
        ),
    )
    console.print(f"results in {out}; {results['seconds']}s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="under a minute, stores up to 100k")
    mode.add_argument("--smoke", action="store_true", help="a few iterations; for the test suite")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results and the plot go")
    args = parser.parse_args()
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    os.environ.setdefault("SESSIONGATE_STATE_DIR", tempfile.mkdtemp(prefix="sg-bench-"))
    results = asyncio.run(run_all(profile, args.out))
    if profile == "full" and args.out == RESULTS:
        update_readme(Path("benchmarks/README.md"), render_readme_section(results))
        console.print("benchmarks/README.md updated")


if __name__ == "__main__":
    main()
