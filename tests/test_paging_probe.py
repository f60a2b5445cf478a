"""No existence leak by paging or probes: cursors are opaque, sealed to the caller's view,
and a restricted caller never gets an empty page with a cursor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from sessiongate.config import SessionGateConfig
from tests.helpers import client_for, invoke

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

TREE = {"sessions": {"visibility": "tree"}, "agentToAgent": {"enabled": False}}


async def pages(http: httpx.AsyncClient, caller: str | None, **params: Any) -> list[Any]:
    """Every page of /v1/sessions for `caller`, following nextCursor."""
    headers = {"x-session-key": caller} if caller else {}
    found: list[Any] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await http.get("/v1/sessions", params=query, headers=headers)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        found.append(result)
        cursor = result["nextCursor"]
        if cursor is None:
            return found
    raise AssertionError("paging did not end")


async def test_a_restricted_caller_pages_only_what_it_sees(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory(tools=TREE)) as gw, client_for(gw) as http:
        spawned = await invoke(
            http, "sessions_spawn", {"agentId": "atlas", "task": "t"}, "agent:atlas:main"
        )
        child = spawned.json()["result"]["childSessionKey"]
        for i in range(6):  # newer than the child, and hidden from agent:atlas:main
            sent = await invoke(
                http, "sessions_send", {"sessionKey": f"agent:atlas:cron:j{i}", "message": "m"}
            )
            assert sent.status_code == 200
        restricted = await pages(http, "agent:atlas:main", limit=1)
        assert [[s["key"] for s in p["sessions"]] for p in restricted] == [
            [child],
            ["agent:atlas:main"],
        ]
        for page in restricted[:-1]:
            assert page["nextCursor"] and not page["nextCursor"].startswith("s")
        peggy = await pages(http, "agent:peggy:main", limit=1, agentId="atlas")
        assert peggy == [{"sessions": [], "nextCursor": None}]
        operator = await pages(http, None, limit=4)
        assert sum(len(p["sessions"]) for p in operator) == 9
        assert all(p["sessions"] for p in operator)


async def test_cursors_are_sealed_to_the_caller_and_filters(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        for i in range(3):
            await invoke(
                http, "sessions_send", {"sessionKey": f"agent:atlas:cron:j{i}", "message": "m"}
            )
        first = (await http.get("/v1/sessions", params={"limit": 1})).json()["result"]
        cursor = first["nextCursor"]
        again = await http.get("/v1/sessions", params={"limit": 1, "cursor": cursor})
        assert again.status_code == 200
        other_caller = await http.get(
            "/v1/sessions",
            params={"limit": 1, "cursor": cursor},
            headers={"x-session-key": "agent:atlas:main"},
        )
        other_filter = await http.get(
            "/v1/sessions", params={"limit": 1, "cursor": cursor, "agentId": "atlas"}
        )
        forged = await http.get("/v1/sessions", params={"limit": 1, "cursor": "s1"})
        tampered = await http.get(
            "/v1/sessions", params={"limit": 1, "cursor": "MQ" + cursor[cursor.index(".") :]}
        )
        for refused in (other_caller, other_filter, forged, tampered):
            assert refused.status_code == 400
            assert refused.json()["error"]["details"] == {"argument": "cursor"}


async def test_unauthenticated_readiness_says_only_ready(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as anonymous:
        ready = await anonymous.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ok": True, "status": "ready"}
        wrong = await anonymous.get("/readyz", headers={"authorization": "Bearer nope"})
        assert wrong.json() == {"ok": True, "status": "ready"}
        async with client_for(gw) as http:
            assert (await http.get("/readyz")).json()["sessions"] == 2
