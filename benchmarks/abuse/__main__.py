"""Run every attack and print its figures (see benchmarks/abuse/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import console, print_table
from benchmarks.abuse import attacks, round2


@dataclass(frozen=True)
class Profile:
    seconds: float
    slow: int
    idle: int
    flood: int
    depth: int
    rounds: int
    hidden: int
    agents: int
    round2_seconds: float
    existence_trials: int


PROFILES = {
    "full": Profile(40, 1100, 500, 3000, 20, 200, 200, 10_000, 10, 40),
    "quick": Profile(15, 600, 200, 1000, 20, 60, 60, 10_000, 6, 20),
    "smoke": Profile(3, 20, 10, 50, 3, 5, 5, 200, 2, 2),
}
FD_LIMIT = 1024


def _connection_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            "on" if r["budgets"] else "off",
            str(r["attack_connections"]),
            f"{r['legit_ok']} / {r['legit_failed']}",
            str(r["attacker_closed_by_server"]),
            str(r["attacker_refused_503"]),
            str(r["attacker_connect_failed"]),
            str(r["server_fds_during_attack"]),
            ", ".join(f"{k} {v}" for k, v in sorted(r["shed"].items())) or "-",
            f"{r['peak_rss_mib']:.0f}",
        )
        for r in results
    ]


def _flood_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            "on" if r["budgets"] else "off",
            str(r["requests"]),
            f"{r['idle_rss_mib']:.0f}",
            f"{r['never_reads_peak_rss_mib']:.0f}",
            r["never_reads_connection"],
            f"{r['reads_peak_rss_mib']:.0f}",
            ", ".join(f"{k} {v}" for k, v in sorted(r["reads_outcomes"].items())),
            f"{r['legit_ok']} / {r['legit_failed']}",
        )
        for r in results
    ]


async def _attacks(p: Profile, tmp: Path, only_round2: bool = False) -> dict[str, Any]:
    if only_round2:
        return await _round2(p, tmp)
    connections = [
        await attacks.slowloris_and_idle(tmp, budgets, p.seconds, p.slow, p.idle, FD_LIMIT)
        for budgets in (True, False)
    ]
    print_table(
        f"slowloris + idle WebSockets, {p.seconds:.0f} s, server fd limit {FD_LIMIT}",
        _connection_rows(connections),
        ("budgets", "attack conns", "legit ok / failed", "closed by server", "refused 503",
         "connect failed", "server fds", "shed (metrics)", "peak RSS MiB"),
    )  # fmt: skip
    floods = [await attacks.pipelining_flood(tmp, b, p.flood, 10) for b in (True, False)]
    print_table(
        "WebSocket pipelining flood: sessions.history (~300 KB answers)",
        _flood_rows(floods),
        ("budgets", "requests", "idle MiB", "never reads: peak MiB", "never reads: connection",
         "reads: peak MiB", "reads: answers", "legit ok / failed"),
    )  # fmt: skip
    timing = await attacks.deep_spawn_timing(tmp, p.depth, p.rounds)
    print_table("refusal time, hidden vs missing", [tuple(map(str, timing.values()))],
                tuple(timing))  # fmt: skip
    paging = await attacks.paging_probe(tmp, p.hidden)
    print_table("paging probe (restricted caller, limit=1)", [tuple(map(str, paging.values()))],
                tuple(paging))  # fmt: skip
    return {"connections": connections, "flood": floods, "timing": timing, "paging": paging,
            **await _round2(p, tmp)}  # fmt: skip


async def _round2(p: Profile, tmp: Path) -> dict[str, Any]:
    hostile = await round2.run_round2(tmp, p.round2_seconds)
    print_table(
        f"hostile input, round 2: an honest client beside each attack, {p.round2_seconds:g} s",
        _round2_rows(hostile),
        ("attack", "honest ok / total", "p50 ms", "RSS before MiB", "RSS peak MiB", "attacker"),
    )
    existence = await round2.existence_probe(tmp, p.existence_trials)
    print_table("existence by timing (median of 20 probes)", [tuple(map(str, existence.values()))],
                tuple(existence))  # fmt: skip
    return {"round2": hostile, "existence": existence}


def _round2_rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            name,
            f"{r['honest_ok']} / {r['honest_total']}",
            str(r["p50_ms"]),
            f"{r['rss_before_mib']:.0f}",
            f"{r['rss_peak_mib']:.0f}",
            ", ".join(f"{k} {v}" for k, v in sorted(r["attacker"].items())) or "-",
        )
        for name, r in results.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--round2", action="store_true", help="only the round-2 attacks")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    profile = PROFILES[name]
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[str, Any] = {}
        if not args.round2:
            scale = attacks.config_at_scale(Path(tmp), profile.agents, 1000)
            print_table("config at scale", [tuple(map(str, scale.values()))], tuple(scale))
            results["config"] = scale
        results.update(asyncio.run(_attacks(profile, Path(tmp), args.round2)))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        suffix = "-round2" if args.round2 else ""
        (args.out / f"abuse-{name}{suffix}.json").write_text(json.dumps(results, indent=2))
    console.print(f"[green]done[/] ({name})")


if __name__ == "__main__":
    main()
