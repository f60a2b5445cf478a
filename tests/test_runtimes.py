"""LLM and webhook runtimes against fake upstream servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessiongate.config import SessionGateConfig
from tests.helpers import (
    INCIDENT_KEY,
    aeventually,
    client_for,
    completion,
    connected,
    invoke,
    session_keys,
    tool_call,
    upstream,
    wait_for_messages,
    webhook_app,
    webhook_config,
)

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]


class FakeModel:
    """An OpenAI-compatible endpoint that sends to the incident key, then follows suggestions."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_results:
            args = {"sessionKey": INCIDENT_KEY, "message": "deploy done"}
            return completion(tool_call("c1", "sessions_send", args))
        last = json.loads(tool_results[-1]["content"])
        if not last["ok"]:
            retry_key = last["error"]["details"]["suggestions"][0]
            args = {"sessionKey": retry_key, "message": "deploy done"}
            return completion(tool_call("c2", "sessions_send", args))
        return completion({"content": f"told {last['result']['sessionKey']}"})


async def test_llm_agent_reads_suggestions_and_retries_to_the_main_session(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    model = FakeModel()
    async with upstream(model.app) as fake:
        config = config_factory(
            gateway__sessions={"createOnMiss": False},
            models={"providers": {"fake": {"baseUrl": f"{fake.url}/v1", "apiKey": "k"}}},
            agents={
                "list": [
                    {"id": "atlas", "default": True},
                    {"id": "peggy", "model": "fake/some-model"},
                ]
            },
        )
        async with serve(config) as gw, client_for(gw) as http:
            response = await invoke(
                http, "sessions_send", {"sessionKey": "agent:peggy:main", "message": "tell atlas"}
            )
            result = response.json()["result"]
            assert result["status"] == "ok", result
            assert result["reply"] == "told agent:atlas:main"
            assert INCIDENT_KEY not in await session_keys(http)
            atlas = await wait_for_messages(http, "agent:atlas:main", 2)
            assert atlas[0]["content"] == "deploy done"
            assert atlas[0]["meta"]["caller"] == "agent:peggy:main"
    first_tool_result = json.loads(model.requests[1]["messages"][-1]["content"])
    assert first_tool_result["error"]["code"] == "SESSION_NOT_FOUND"
    assert first_tool_result["error"]["details"]["suggestions"] == ["agent:atlas:main"]
    offered = {t["function"]["name"] for t in model.requests[0]["tools"]}
    assert offered == {"sessions_send", "sessions_spawn", "sessions_list", "sessions_history"}
    assert model.requests[0]["model"] == "some-model"


async def test_a_run_that_outlives_the_wait_times_out_and_continues(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with (
        upstream(webhook_app(0.6)) as fake,
        serve(webhook_config(config_factory, fake.url)) as gw,
        client_for(gw) as http,
    ):
        args = {"sessionKey": "agent:slow:main", "message": "job", "timeoutSeconds": 0.1}
        result = (await invoke(http, "sessions_send", args)).json()["result"]
        assert result["status"] == "timeout" and result["runId"]
        messages = await wait_for_messages(http, "agent:slow:main", 2)
        assert messages[1]["content"] == "done: job"
        assert messages[1]["runId"] == result["runId"]


async def test_a_failing_run_reports_error_and_keeps_the_inbound_message(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with (
        upstream(webhook_app(0)) as fake,
        serve(webhook_config(config_factory, fake.url)) as gw,
        client_for(gw) as http,
    ):
        args = {"sessionKey": "agent:broken:main", "message": "keep me"}
        result = (await invoke(http, "sessions_send", args)).json()["result"]
        assert result["status"] == "error"
        assert "500" in result["error"]["message"]
        messages = (await http.get("/v1/sessions/agent:broken:main/messages")).json()
        assert [m["content"] for m in messages["result"]["messages"]] == ["keep me"]
        run = await gw.gateway.store.find_run(result["runId"])
        assert run is not None and run.status == "failed"


async def test_webhook_reply_over_http(serve: Serve, config_factory: ConfigFactory) -> None:
    async with (
        upstream(webhook_app(0)) as fake,
        serve(webhook_config(config_factory, fake.url)) as gw,
        httpx.AsyncClient(base_url=gw.url, headers={"authorization": f"Bearer {gw.token}"}) as http,
    ):
        args = {"sessionKey": "agent:slow:main", "message": "quick"}
        result = (await invoke(http, "sessions_send", args)).json()["result"]
        assert (result["status"], result["reply"]) == ("ok", "done: quick")


async def test_the_periodic_sweep_leaves_this_process_runs_alone(
    serve: Serve, config_factory: ConfigFactory, monkeypatch: Any
) -> None:
    monkeypatch.setattr("sessiongate.gateway.JANITOR_INTERVAL_SECONDS", 0.05)
    sweeps: list[int] = []
    async with (
        upstream(webhook_app(0.6)) as fake,
        serve(webhook_config(config_factory, fake.url)) as gw,
        client_for(gw) as http,
    ):
        sweep = gw.gateway.store.interrupt_running

        async def counted_sweep() -> int:
            sweeps.append(1)
            return await sweep()

        async def three_sweeps() -> bool:
            return len(sweeps) >= 3

        monkeypatch.setattr(gw.gateway.store, "interrupt_running", counted_sweep)
        args = {"sessionKey": "agent:slow:main", "message": "job", "timeoutSeconds": 0}
        run_id = (await invoke(http, "sessions_send", args)).json()["result"]["runId"]
        await aeventually(three_sweeps, what="three sweeps while the run is in flight")
        run = await gw.gateway.store.find_run(run_id)
        assert run is not None and run.status == "running"
        await wait_for_messages(http, "agent:slow:main", 2)
        done = await gw.gateway.store.find_run(run_id)
        assert done is not None and done.status == "completed"


class TranscriptModel:
    """An OpenAI-compatible endpoint that answers `model: <last message>`, keeping the
    transcripts it was sent; `hold` keeps its answers back until set."""

    def __init__(self) -> None:
        self.transcripts: list[list[tuple[str, str]]] = []
        self.hold: asyncio.Event | None = None
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        messages = body["messages"][1:]  # after the system prompt
        self.transcripts.append([(m["role"], m["content"]) for m in messages])
        if self.hold is not None:
            await self.hold.wait()
        return completion({"content": f"model: {messages[-1]['content']}"})


async def test_each_run_reads_the_transcript_before_its_message(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    """Read with the intake when the run starts at once, or when it starts behind another
    run of its session (then it holds the other run's reply too)."""
    model = TranscriptModel()
    async with upstream(model.app) as fake:
        config = config_factory(
            models={"providers": {"fake": {"baseUrl": f"{fake.url}/v1", "apiKey": "k"}}},
            agents={"list": [{"id": "atlas", "default": True},
                             {"id": "peggy", "model": "fake/m"}]},
        )  # fmt: skip
        async with serve(config) as gw, client_for(gw) as http:
            for text in ("one", "two"):  # each starts at once: its lane is idle
                args = {"sessionKey": "agent:peggy:main", "message": text}
                assert (await invoke(http, "sessions_send", args)).json()["result"][
                    "status"
                ] == "ok"
            model.hold = asyncio.Event()
            first, second = ({"sessionKey": "agent:peggy:main", "message": text,
                              "timeoutSeconds": 0} for text in ("three", "four"))  # fmt: skip
            await invoke(http, "sessions_send", first)

            async def third_is_running() -> bool:
                return len(model.transcripts) == 3

            await aeventually(third_is_running, what="the third run at the model")
            await invoke(http, "sessions_send", second)  # queued behind "three"
            model.hold.set()
            await wait_for_messages(http, "agent:peggy:main", 8)
    said = [("user", "one"), ("assistant", "model: one"), ("user", "two"),
            ("assistant", "model: two"), ("user", "three"), ("assistant", "model: three"),
            ("user", "four")]  # fmt: skip
    assert model.transcripts == [said[:1], said[:3], said[:5], said]


def transcript_config(config_factory: ConfigFactory, url: str) -> SessionGateConfig:
    return config_factory(
        models={"providers": {"fake": {"baseUrl": f"{url}/v1", "apiKey": "k"}}},
        agents={"list": [{"id": "atlas", "default": True}, {"id": "peggy", "model": "fake/m"},
                         {"id": "quinn", "model": "fake/m"}]},
    )  # fmt: skip


@contextlib.asynccontextmanager
async def held_model_gateway(
    serve: Serve, config_factory: ConfigFactory
) -> AsyncIterator[tuple[TranscriptModel, Any, httpx.AsyncClient]]:
    """A gateway whose agents peggy and quinn talk to a `TranscriptModel` that holds its
    answers until `model.hold` is set — set on the way out too, else the fake model's
    shutdown waits for its held answers."""
    model = TranscriptModel()
    model.hold = asyncio.Event()
    async with (
        upstream(model.app) as fake,
        serve(transcript_config(config_factory, fake.url)) as gw,
        client_for(gw) as http,
    ):
        try:
            yield model, gw, http
        finally:
            model.hold.set()


async def test_a_send_arriving_during_a_waiting_sends_run_is_run_after_it(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    """The lane serialises a waiting send's run (started on an idle lane) and a send that
    arrives while it runs: the second is stored, queued, and run after the first ends."""
    key = "agent:peggy:main"
    async with held_model_gateway(serve, config_factory) as (model, _, http):
        one, two = ({"sessionKey": key, "message": text} for text in ("one", "two"))
        first = asyncio.create_task(invoke(http, "sessions_send", one))

        async def first_at_the_model() -> bool:
            return len(model.transcripts) == 1

        await aeventually(first_at_the_model, what="the first run at the model")
        second = asyncio.create_task(invoke(http, "sessions_send", two))
        await wait_for_messages(http, key, 2)  # both messages stored, the first run held
        assert len(model.transcripts) == 1  # the second waits behind the first
        model.hold.set()
        answers = [(await task).json()["result"] for task in (first, second)]
        assert [(a["status"], a["reply"]) for a in answers] == [
            ("ok", "model: one"),
            ("ok", "model: two"),
        ]
        messages = await wait_for_messages(http, key, 4)
    assert [m["content"] for m in messages] == ["one", "two", "model: one", "model: two"]
    assert model.transcripts == [
        [("user", "one")],
        [("user", "one"), ("assistant", "model: one"), ("user", "two")],
    ]


async def test_a_waiting_send_times_out_while_its_run_goes_on_to_the_end(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    key = "agent:peggy:main"
    async with held_model_gateway(serve, config_factory) as (model, gw, http):
        args = {"sessionKey": key, "message": "job", "timeoutSeconds": 0.2}
        result = (await invoke(http, "sessions_send", args)).json()["result"]
        assert result["status"] == "timeout"  # the model holds its answer until told
        running = await gw.gateway.store.find_run(result["runId"])
        assert running is not None and running.status == "running"
        model.hold.set()
        messages = await wait_for_messages(http, key, 2)
        assert (messages[1]["content"], messages[1]["runId"]) == ("model: job", result["runId"])

        async def completed() -> bool:
            run = await gw.gateway.store.find_run(result["runId"])
            return run is not None and run.status == "completed"

        await aeventually(completed, what="the run completed")
        again = {"sessionKey": key, "message": "next"}  # the lane serves the next send
        answer = (await invoke(http, "sessions_send", again)).json()["result"]
        assert (answer["status"], answer["reply"]) == ("ok", "model: next")


async def test_a_client_gone_mid_run_does_not_cancel_the_run(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    """Over HTTP (the request abandoned) and over a WebSocket (closed: the connection's
    requests are cancelled), the waiting send's run goes on and stores its reply."""
    async with held_model_gateway(serve, config_factory) as (model, gw, http):
        abandoned = asyncio.create_task(
            invoke(http, "sessions_send", {"sessionKey": "agent:peggy:main", "message": "http"})
        )
        ws = await connected(gw)
        await ws.send(json.dumps({"type": "req", "id": 1, "method": "tools.invoke", "params": {
            "tool": "sessions_send", "args": {"sessionKey": "agent:quinn:main", "message": "ws"},
        }}))  # fmt: skip

        async def both_at_the_model() -> bool:
            return len(model.transcripts) == 2

        await aeventually(both_at_the_model, what="both runs at the model")
        abandoned.cancel()
        await ws.close()
        await asyncio.gather(abandoned, return_exceptions=True)
        model.hold.set()
        for key, text in (("agent:peggy:main", "http"), ("agent:quinn:main", "ws")):
            messages = await wait_for_messages(http, key, 2)
            assert [m["content"] for m in messages] == [text, f"model: {text}"]
            run = await gw.gateway.store.find_run(messages[1]["runId"])
            assert run is not None and run.status == "completed"
