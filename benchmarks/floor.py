"""The floor of our own stack: each gateway path as a ratio to the bare uvicorn+starlette
equivalent, measured in alternating rounds, with one ratio per round beside its target.

Each ratio, gateway against floor, and its target:

- sends: fire-and-forget `sessions_send` (`timeoutSeconds: 0`), SQLite, access log on,
  against the bare starlette JSON endpoint, in requests/s: >= 0.5x;
- WebSocket turn: an `agent` turn on `/ws` against the bare WebSocket echo, p50: <= 3x;
- strict rejection: `sessions_send` to a missing key under `createOnMiss: false` (404)
  against `GET /v1/sessions/{key}` (a resolver hit), p50: <= 1.0x;
  and, like for like, `GET /v1/sessions/{missing}` (404) against the same hit;
- access log: sends/s with the access log on against the same gateway with it off: <= 5%;
- LLM turn: a send to an agent on an instant fake OpenAI model against the same send to an
  echo agent, p50: at most 1 ms more;
- PostgreSQL: fire-and-forget sends on one process on PostgreSQL against the bare endpoint:
  >= 0.25x;
- idle RSS of the gateway after start-up: <= 80 MiB.

Throughput uses the raw-socket load generator (`_loadgen.py`) with 16 keep-alive clients;
latencies are sequential requests over one connection (raw sockets for HTTP). Every server
runs in its own process under the same uvicorn settings, and before each measurement the
benchmark waits until they are all idle (a fire-and-forget send leaves its run to finish
after the answer). On a shared machine absolute figures move from run to run; the pairs
are measured back to back, in alternating order, so a ratio per round is what to read.

Run: .venv/bin/python -m benchmarks.floor [--quick | --smoke] [--rounds R] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from benchmarks._common import (
    TOKEN,
    console,
    free_port,
    percentile,
    postgres_reachable,
    postgres_schema,
    print_table,
    process,
    rss_mib,
    uvicorn_command,
)
from benchmarks._loadgen import hammer, render, render_get, sequential

HOST = "127.0.0.1"
CLIENTS = 16
SESSIONS = [f"agent:atlas:cron:job-{i}" for i in range(CLIENTS)]
MISSING = "agent:atlas:telegram:atlas:direct:6596143250"  # the incident's key


@dataclass(frozen=True)
class Profile:
    rounds: int
    sends: int  # per throughput sample
    postgres_sends: int
    calls: int  # per latency sample


PROFILES = {
    "full": Profile(rounds=5, sends=4000, postgres_sends=2000, calls=400),
    "quick": Profile(rounds=3, sends=1500, postgres_sends=800, calls=150),
    "smoke": Profile(rounds=1, sends=40, postgres_sends=40, calls=5),
}


@dataclass(frozen=True)
class Target:
    name: str
    text: str
    met: Callable[[float], bool]
    unit: str = "x"


TARGETS = {
    "sends": Target("sends/s vs bare endpoint", ">= 0.50x", lambda r: r >= 0.5),
    "sends_cpu": Target("  same, by server CPU per request", ">= 0.50x", lambda r: r >= 0.5),
    "ws_turn": Target("WS agent turn vs bare echo (p50)", "<= 3.00x", lambda r: r <= 3.0),
    "reject": Target("strict rejection vs hit (p50)", "<= 1.00x", lambda r: r <= 1.0),
    "reject_get": Target("  like for like: GET 404 vs GET hit", "<= 1.00x", lambda r: r <= 1.0),
    "access_log": Target("access log cost (sends/s)", "<= 5%", lambda r: r <= 5.0, "%"),
    "access_log_cpu": Target("  same, by server CPU per request", "<= 5%", lambda r: r <= 5.0, "%"),
    "llm_ms": Target("LLM turn over echo (p50)", "<= 1.00 ms", lambda r: r <= 1.0, " ms"),
    "postgres": Target("PostgreSQL 1 process vs bare", ">= 0.25x", lambda r: r >= 0.25),
    "postgres_cpu": Target("  same, by gateway CPU per request", ">= 0.25x", lambda r: r >= 0.25),
    "idle_rss": Target("idle RSS", "<= 80 MiB", lambda r: r <= 80.0, " MiB"),
}


@dataclass
class Server:
    port: int
    pid: int = 0
    cpu_us: float = 0.0  # CPU per request of its latest throughput sample

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass
class Servers:
    bare: Server
    model: Server
    gateway: Server  # SQLite, access log on (the default config)
    quiet: Server  # the same gateway with the access log off
    postgres: Server | None

    def all(self) -> list[Server]:
        return [s for s in (self.bare, self.model, self.gateway, self.quiet, self.postgres) if s]


@dataclass
class Rounds:
    ratios: dict[str, list[float]] = field(default_factory=dict)
    raw: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float, into: str = "ratios") -> None:
        getattr(self, into).setdefault(name, []).append(value)


def gateway_config(tmp: Path, port: int, model_port: int, storage_url: str | None) -> Path:
    """The default config (createOnMiss true, access log on at level info), plus an echo agent,
    an LLM agent on the fake model, and one strict rule for the rejection path."""
    config = {
        "gateway": {
            "port": port,
            "auth": {"token": TOKEN},
            "sessions": {"rules": [{"match": "agent:atlas:telegram:*", "createOnMiss": False}]},
        },
        "storage": {"url": storage_url or f"sqlite:///{tmp / f'state-{port}.db'}"},
        "audit": {"path": str(tmp / f"audit-{port}.jsonl")},
        "models": {"providers": {"fake": {"baseUrl": f"http://{HOST}:{model_port}/v1"}}},
        "agents": {"list": [{"id": "atlas", "default": True}, {"id": "peggy"},
                            {"id": "llm", "model": "fake/bench-model"}]},
    }  # fmt: skip
    path = tmp / f"floor-{port}.json5"
    path.write_text(json.dumps(config))
    return path


def serve_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "sessiongate", "serve", "--config", str(config)]


@asynccontextmanager
async def servers(tmp: Path, with_postgres: bool) -> AsyncIterator[Servers]:
    found = Servers(*(Server(free_port()) for _ in range(4)), postgres=None)
    async with AsyncExitStack() as stack:
        for server, command, env in [
            (found.bare, uvicorn_command("benchmarks.bare_starlette:app", found.bare.port), {}),
            (found.model, uvicorn_command("benchmarks.fake_openai:app", found.model.port), {}),
            (found.gateway, serve_command(gateway_config(tmp, found.gateway.port,
                                                         found.model.port, None)), {}),
            (found.quiet, serve_command(gateway_config(tmp, found.quiet.port, found.model.port,
                                                       None)),
             {"SESSIONGATE_LOG_LEVEL": "warning"}),
        ]:  # fmt: skip
            server.pid = stack.enter_context(process(command, server.url, env)).pid
        if with_postgres:
            url = await stack.enter_async_context(postgres_schema("sg_floor"))
            found.postgres = Server(free_port())
            config = gateway_config(tmp, found.postgres.port, found.model.port, url)
            proc = stack.enter_context(process(serve_command(config), found.postgres.url))
            found.postgres.pid = proc.pid
        yield found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle(all_servers: Servers, limit: float = 10.0) -> None:
    """Wait until no server uses CPU (fire-and-forget runs finish after their answer)."""
    deadline = time.monotonic() + limit
    pids = [s.pid for s in all_servers.all()]
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(0.1)
        if sum(cpu_seconds(pid) for pid in pids) - before < 0.005:
            return


def send_request(port: int, timeout: float | None, keys: list[str]) -> Callable[[int], bytes]:
    def make(i: int) -> bytes:
        args: dict[str, Any] = {"sessionKey": keys[i % len(keys)], "message": f"m{i}"}
        if timeout is not None:
            args["timeoutSeconds"] = timeout
        return render(HOST, port, "/tools/invoke", {"tool": "sessions_send", "args": args}, TOKEN)

    return make


async def throughput(s: Servers, server: Server, make: Callable[[int], bytes], total: int) -> float:
    """Requests/s; also keeps the server's CPU per request, its fire-and-forget runs included
    (`server.cpu_us`): what other load on the machine moves least."""
    before = cpu_seconds(server.pid)
    rate = await hammer(HOST, server.port, make, total, CLIENTS)
    await settle(s)
    # at least one clock tick, what /proc counts in: a smoke run's few requests may use less
    used = max(cpu_seconds(server.pid) - before, 1 / os.sysconf("SC_CLK_TCK"))
    server.cpu_us = used / total * 1e6
    return rate


async def p50_http(server: Server, make: Callable[[int], bytes], count: int, expect: int) -> float:
    return percentile(await sequential(HOST, server.port, make, count, expect), 0.5)


async def p50_ws(ws: ClientConnection, method: str, count: int) -> float:
    samples = []
    for i in range(count):
        frame = {"type": "req", "id": i, "method": method,
                 "params": {"sessionKey": "agent:peggy:main", "message": f"m{i}"}}  # fmt: skip
        started = time.perf_counter()
        await ws.send(json.dumps(frame))
        while True:
            answer = json.loads(await ws.recv())
            if answer["type"] == "res" and answer["id"] == i:
                break
        samples.append(time.perf_counter() - started)
        assert answer["ok"], answer
    return percentile(samples, 0.5)


Measure = Callable[[], Awaitable[float]]


async def pair(s: Servers, flip: bool, first: Measure, second: Measure) -> tuple[float, float]:
    """Both measurements back to back, in the order `flip` says, each from idle."""
    results: dict[int, float] = {}
    for index in (1, 0) if flip else (0, 1):
        await settle(s)
        results[index] = await (first, second)[index]()
    return results[0], results[1]


async def one_round(
    s: Servers, p: Profile, flip: bool, ws: ClientConnection, echo_ws: ClientConnection, r: Rounds
) -> None:
    gw, quiet, bare = s.gateway, s.quiet, s.bare
    send = send_request(gw.port, 0, SESSIONS)
    bare_rps, send_rps = await pair(
        s, flip,
        lambda: throughput(s, bare, send_request(bare.port, 0, SESSIONS), p.sends),
        lambda: throughput(s, gw, send, p.sends),
    )  # fmt: skip
    r.add("sends", send_rps / bare_rps)
    r.add("sends_cpu", bare.cpu_us / gw.cpu_us)
    r.add("bare_rps", bare_rps, "raw")
    r.add("send_rps", send_rps, "raw")
    r.add("bare_cpu_us", bare.cpu_us, "raw")
    r.add("send_cpu_us", gw.cpu_us, "raw")

    quiet_rps, logged_rps = await pair(
        s, flip,
        lambda: throughput(s, quiet, send_request(quiet.port, 0, SESSIONS), p.sends),
        lambda: throughput(s, gw, send, p.sends),
    )  # fmt: skip
    r.add("access_log", 100 * (1 - logged_rps / quiet_rps))
    r.add("access_log_cpu", 100 * (1 - quiet.cpu_us / gw.cpu_us))
    r.add("quiet_rps", quiet_rps, "raw")
    r.add("quiet_cpu_us", quiet.cpu_us, "raw")

    echo_p50, turn_p50 = await pair(
        s, flip, lambda: p50_ws(echo_ws, "echo", p.calls), lambda: p50_ws(ws, "agent", p.calls)
    )
    r.add("ws_turn", turn_p50 / echo_p50)
    r.add("ws_echo_ms", echo_p50 * 1000, "raw")
    r.add("ws_turn_ms", turn_p50 * 1000, "raw")

    hit_p50, reject_p50 = await pair(
        s, flip,
        lambda: p50_http(gw, lambda i: render_get(HOST, gw.port, "/v1/sessions/agent:atlas:main",
                                                 TOKEN), p.calls, 200),
        lambda: p50_http(gw, send_request(gw.port, None, [MISSING]), p.calls, 404),
    )  # fmt: skip
    r.add("reject", reject_p50 / hit_p50)
    r.add("hit_ms", hit_p50 * 1000, "raw")
    r.add("reject_ms", reject_p50 * 1000, "raw")

    def get(key: str) -> Callable[[int], bytes]:
        return lambda i: render_get(HOST, gw.port, f"/v1/sessions/{key}", TOKEN)

    hit_p50, missing_p50 = await pair(
        s, flip,
        lambda: p50_http(gw, get("agent:atlas:main"), p.calls, 200),
        lambda: p50_http(gw, get(MISSING), p.calls, 404),
    )  # fmt: skip
    r.add("reject_get", missing_p50 / hit_p50)
    r.add("missing_get_ms", missing_p50 * 1000, "raw")

    echo_send, llm_send = await pair(
        s, flip,
        lambda: p50_http(gw, send_request(gw.port, None, ["agent:atlas:main"]), p.calls, 200),
        lambda: p50_http(gw, send_request(gw.port, None, ["agent:llm:main"]), p.calls, 200),
    )  # fmt: skip
    r.add("llm_ms", (llm_send - echo_send) * 1000)
    r.add("echo_send_ms", echo_send * 1000, "raw")
    r.add("llm_send_ms", llm_send * 1000, "raw")

    if s.postgres is not None:
        pg = s.postgres
        bare_rps, pg_rps = await pair(
            s, flip,
            lambda: throughput(s, bare, send_request(bare.port, 0, SESSIONS), p.postgres_sends),
            lambda: throughput(s, pg, send_request(pg.port, 0, SESSIONS), p.postgres_sends),
        )  # fmt: skip
        r.add("postgres", pg_rps / bare_rps)
        r.add("postgres_cpu", bare.cpu_us / pg.cpu_us)
        r.add("postgres_rps", pg_rps, "raw")
        r.add("postgres_cpu_us", pg.cpu_us, "raw")


async def warm_up(s: Servers, ws: ClientConnection, echo_ws: ClientConnection) -> None:
    """Create the send sessions, load lazy imports and caches: nothing counted."""
    for server in [s.gateway, s.quiet, s.bare] + ([s.postgres] if s.postgres else []):
        await hammer(HOST, server.port, send_request(server.port, 0, SESSIONS), 200, CLIENTS)
    await p50_ws(ws, "agent", 20)
    await p50_ws(echo_ws, "echo", 20)
    await sequential(HOST, s.gateway.port, send_request(s.gateway.port, None, [MISSING]), 5, 404)
    for server in (s.gateway, s.quiet):  # both load the LLM runtime: the same heap to collect
        await sequential(HOST, server.port,
                         send_request(server.port, None, ["agent:llm:main"]), 5, 200)  # fmt: skip


async def measure(p: Profile, with_postgres: bool) -> dict[str, Any]:
    rounds = Rounds()
    with tempfile.TemporaryDirectory() as name:
        async with servers(Path(name), with_postgres) as s:
            await settle(s)
            await asyncio.sleep(1.0)
            idle_rss = rss_mib(s.gateway.pid)
            async with (
                connect(f"ws://{HOST}:{s.gateway.port}/ws", compression=None) as ws,
                connect(f"ws://{HOST}:{s.bare.port}/ws", compression=None) as echo_ws,
            ):
                await ws.send(json.dumps({"type": "req", "id": -1, "method": "connect",
                                          "params": {"token": TOKEN}}))  # fmt: skip
                assert json.loads(await ws.recv())["ok"]
                await warm_up(s, ws, echo_ws)
                for index in range(p.rounds):
                    await one_round(s, p, index % 2 == 1, ws, echo_ws, rounds)
            busy_rss = rss_mib(s.gateway.pid)
    rounds.add("idle_rss", idle_rss)
    return {"ratios": rounds.ratios, "raw": rounds.raw, "idle_rss_mib": idle_rss,
            "busy_rss_mib": busy_rss}  # fmt: skip


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:.2f}{unit}"


def report(result: dict[str, Any], p: Profile) -> None:
    rows = []
    for key, target in TARGETS.items():
        values = result["ratios"].get(key)
        if not values:
            rows.append((target.name, "skipped", "", target.text, ""))
            continue
        median = statistics.median(values)
        per_round = "  ".join(_fmt(v, target.unit) for v in values)
        met = "[green]yes[/]" if target.met(median) else "[red]no[/]"
        rows.append((target.name, per_round, _fmt(median, target.unit), target.text, met))
    title = f"the floor: {p.rounds} alternating rounds, one ratio per round"
    print_table(title, rows, ("ratio", "per round", "median", "target", "met"))
    raw = [(k, "  ".join(f"{v:,.2f}" for v in vs), f"{statistics.median(vs):,.2f}")
           for k, vs in result["raw"].items()]  # fmt: skip
    print_table("absolute figures (noisy on a shared machine)", raw, ("figure", "per round",
                                                                       "median"))  # fmt: skip
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
                  f"RSS idle {result['idle_rss_mib']:.1f} MiB, after the run "
                  f"{result['busy_rss_mib']:.1f} MiB")  # fmt: skip


async def main(p: Profile, out: Path | None) -> None:
    with_postgres = await postgres_reachable()
    started = time.perf_counter()
    result = await measure(p, with_postgres)
    report(result, p)
    console.print(f"{time.perf_counter() - started:.0f} s")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        result["profile"] = asdict(p)
        result["loadavg"] = os.getloadavg()[0]
        out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 shorter rounds (~1 min)")
    mode.add_argument("--smoke", action="store_true", help="a few requests; for the test suite")
    parser.add_argument("--rounds", type=int, help="override the profile's rounds")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.rounds:
        profile = Profile(args.rounds, profile.sends, profile.postgres_sends, profile.calls)
    os.environ.setdefault("SESSIONGATE_STATE_DIR", tempfile.mkdtemp(prefix="sg-bench-"))
    asyncio.run(main(profile, args.out))
