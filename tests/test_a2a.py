"""A2A with the official `a2a-sdk` client against a real gateway on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver
from a2a.client.client import Client
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import (
    A2AError,
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessiongate.config import SessionGateConfig
from tests.helpers import a2a_client, a2a_user_message, aeventually, upstream

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

NEVER_ISSUED = "ctx-never-issued-7f3a9c"


def bearer(gw: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {gw.token}"}


user_message = a2a_user_message


async def send(client: Client, message: Message, request: SendMessageRequest | None = None) -> Task:
    request = request or SendMessageRequest(message=message)
    answers: list[StreamResponse] = [a async for a in client.send_message(request)]
    assert len(answers) == 1 and answers[0].HasField("task"), answers
    return answers[0].task


def reply_of(task: Task) -> str:
    return "".join(part.text for artifact in task.artifacts for part in artifact.parts)


async def session_keys(gw: Any) -> set[str]:
    page = await gw.gateway.store.list_sessions(limit=500)
    return {s.key for s in page.sessions}


def wire_of(exc: A2AError) -> dict[str, Any]:
    """The gateway's wire error an A2A error carries (ErrorInfo metadata, via the client)."""
    assert isinstance(exc.data, dict), exc
    return exc.data


# ---------------------------------------------------------------- cards


async def test_cards_are_served_behind_the_token(serve: Serve, config_factory: ConfigFactory):
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        anonymous = await http.get("/.well-known/agent-card.json")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
        default = (await http.get("/.well-known/agent-card.json", headers=bearer(gw))).json()
        peggy = await http.get("/a2a/peggy/.well-known/agent-card.json", headers=bearer(gw))
        missing = await http.get("/a2a/zed/.well-known/agent-card.json", headers=bearer(gw))
    assert default["name"] == "atlas"
    assert default["supportedInterfaces"] == [
        {"url": f"{gw.url}/a2a/atlas", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
        {
            "url": f"{gw.url}/a2a/atlas/rest",
            "protocolBinding": "HTTP+JSON",
            "protocolVersion": "1.0",
        },
    ]
    assert default["capabilities"]["streaming"] is True
    scheme = default["securitySchemes"]["gatewayToken"]["httpAuthSecurityScheme"]
    assert scheme["scheme"] == "bearer"
    assert default["securityRequirements"] == [{"schemes": {"gatewayToken": {}}}]
    assert [skill["id"] for skill in default["skills"]] == ["converse"]
    assert peggy.json()["supportedInterfaces"][0]["url"] == f"{gw.url}/a2a/peggy"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "AGENT_NOT_FOUND"


async def test_the_sdk_client_resolves_a_card_with_the_token(
    serve: Serve, config_factory: ConfigFactory
):
    async with serve(config_factory()) as gw, httpx.AsyncClient(headers=bearer(gw)) as http:
        card = await A2ACardResolver(http, f"{gw.url}/a2a/peggy").get_agent_card()
    assert card.name == "peggy"
    assert card.supported_interfaces[0].url == f"{gw.url}/a2a/peggy"


# ---------------------------------------------------------------- contexts are sessions


async def test_a_message_without_context_starts_a_session_on_purpose(
    serve: Serve, config_factory: ConfigFactory
):
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, a2a_client(gw) as client:
        before = await session_keys(gw)
        task = await send(client, user_message("hello"))
        created = await session_keys(gw) - before
        session = await gw.gateway.store.find(f"agent:atlas:a2a:{task.context_id}")
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert reply_of(task) == "echo: hello"
    assert created == {f"agent:atlas:a2a:{task.context_id}"}
    assert session is not None and session.kind == "a2a"
    assert session.provenance.origin == "a2a"
    assert session.provenance.entry_point == "a2a"
    assert [m.role for m in task.history] == [Role.ROLE_USER, Role.ROLE_AGENT]


async def test_an_issued_context_continues_its_session(serve: Serve, config_factory: ConfigFactory):
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, a2a_client(gw, "peggy", caller="agent:peggy:main") as client:
        first = await send(client, user_message("one"))
        before = await session_keys(gw)
        second = await send(client, user_message("two", first.context_id))
        after = await session_keys(gw)
        key = f"agent:peggy:a2a:{first.context_id}"
        session = await gw.gateway.store.find(key)
        history = await gw.gateway.store.history(key, limit=10)
    assert second.context_id == first.context_id and second.id != first.id
    assert after == before
    assert session is not None and session.provenance.caller_key == "agent:peggy:main"
    assert [m.content for m in history] == ["one", "echo: one", "two", "echo: two"]


async def test_a_never_issued_context_is_refused_under_strict_policy(
    serve: Serve, config_factory: ConfigFactory
):
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, a2a_client(gw) as client:
        before = await session_keys(gw)
        with pytest.raises(InvalidParamsError) as refused:
            await send(client, user_message("hi", NEVER_ISSUED))
        assert await session_keys(gw) == before
        await gw.gateway.audit.flush()
        audit = [json.loads(line) for line in gw.gateway.config.audit_path.read_text().splitlines()]
    error = wire_of(refused.value)["error"]
    assert error["code"] == "SESSION_NOT_FOUND"
    assert error["details"]["requestedKey"] == f"agent:atlas:a2a:{NEVER_ISSUED}"
    assert "suggestions" in error["details"]
    assert "SESSION_NOT_FOUND" in refused.value.message
    assert [(line["decision"], line["caller"]["entryPoint"]) for line in audit] == [
        ("rejected", "a2a")
    ]


async def test_a_refusal_suggests_the_context_it_probably_meant(
    serve: Serve, config_factory: ConfigFactory
):
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, a2a_client(gw) as client:
        issued = (await send(client, user_message("hi"))).context_id
        typo = issued[:-1] + ("0" if issued[-1] != "0" else "1")
        with pytest.raises(InvalidParamsError) as refused:
            await send(client, user_message("hi", typo))
    assert wire_of(refused.value)["error"]["details"]["suggestions"] == [
        f"agent:atlas:a2a:{issued}"
    ]


@pytest.mark.parametrize("mode", [True, "warn"], ids=["true", "warn"])
async def test_a_never_issued_context_is_an_address_under_permissive_policy(
    serve: Serve, config_factory: ConfigFactory, mode: Any
):
    async with (
        serve(config_factory(gateway__sessions={"createOnMiss": mode})) as gw,
        a2a_client(gw) as client,
    ):
        task = await send(client, user_message("hi", NEVER_ISSUED))
        session = await gw.gateway.store.find(f"agent:atlas:a2a:{NEVER_ISSUED}")
        await gw.gateway.audit.flush()
        audit_path = gw.gateway.config.audit_path
    assert task.context_id == NEVER_ISSUED
    assert session is not None and session.provenance.origin == "address"
    lines = [json.loads(line) for line in audit_path.read_text().splitlines()]
    decisions = [
        (line["decision"], line["caller"]["entryPoint"])
        for line in lines
        if line.get("canonicalKey") == f"agent:atlas:a2a:{NEVER_ISSUED}"
    ]
    assert decisions == [("warned" if mode == "warn" else "created", "a2a")]


async def test_a_session_key_is_a_context_of_its_own_agent_only(
    serve: Serve, config_factory: ConfigFactory
):
    async with serve(config_factory()) as gw, a2a_client(gw, "peggy") as client:
        task = await send(client, user_message("hi", "agent:peggy:main"))
        with pytest.raises(InvalidParamsError) as elsewhere:
            await send(client, user_message("hi", "agent:atlas:main"))
    assert task.context_id == "agent:peggy:main"
    assert wire_of(elsewhere.value)["error"]["code"] == "INVALID_REQUEST"


# ---------------------------------------------------------------- tasks are runs


async def test_get_a_task_and_its_history(serve: Serve, config_factory: ConfigFactory):
    async with serve(config_factory()) as gw, a2a_client(gw) as client:
        sent = await send(client, user_message("hello"))
        task = await client.get_task(GetTaskRequest(id=sent.id))
        short = await client.get_task(GetTaskRequest(id=sent.id, history_length=1))
    assert task.id == sent.id and task.context_id == sent.context_id
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert [m.parts[0].text for m in task.history] == ["hello", "echo: hello"]
    assert reply_of(task) == "echo: hello"
    assert [m.parts[0].text for m in short.history] == ["echo: hello"]


async def test_a_task_that_does_not_exist(serve: Serve, config_factory: ConfigFactory):
    async with serve(config_factory()) as gw, a2a_client(gw) as client:
        with pytest.raises(TaskNotFoundError) as missing:
            await client.get_task(GetTaskRequest(id=str(uuid.uuid4())))
        with pytest.raises(TaskNotFoundError):
            await client.cancel_task(CancelTaskRequest(id="no-such-task"))
    assert wire_of(missing.value)["error"]["code"] == "RUN_NOT_FOUND"


async def test_a_task_of_a_hidden_session_is_not_found(serve: Serve, config_factory: ConfigFactory):
    config = config_factory(tools={"sessions": {"visibility": "self"}})
    async with serve(config) as gw:
        async with a2a_client(gw) as operator:
            sent = await send(operator, user_message("private"))
        async with a2a_client(gw, caller="agent:atlas:main") as agent:
            with pytest.raises(TaskNotFoundError):
                await agent.get_task(GetTaskRequest(id=sent.id))


async def test_cancel_a_finished_task(serve: Serve, config_factory: ConfigFactory):
    async with serve(config_factory()) as gw, a2a_client(gw) as client:
        sent = await send(client, user_message("hello"))
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=sent.id))


async def test_list_the_tasks_of_a_context(serve: Serve, config_factory: ConfigFactory):
    async with serve(config_factory()) as gw, a2a_client(gw) as client:
        first = await send(client, user_message("one"))
        second = await send(client, user_message("two", first.context_id))
        listed = await client.list_tasks(ListTasksRequest(context_id=first.context_id))
    assert [t.id for t in listed.tasks] == [second.id, first.id]
    assert all(t.status.state == TaskState.TASK_STATE_COMPLETED for t in listed.tasks)


async def test_list_the_tasks_of_the_agents_contexts(serve: Serve, config_factory: ConfigFactory):
    async with serve(config_factory()) as gw, a2a_client(gw, "peggy") as client:
        one = await send(client, user_message("one"))
        other = await send(client, user_message("two"))
        await send(client, user_message("main", "agent:peggy:main"))  # not an A2A context
        listed = await client.list_tasks(ListTasksRequest())
        failed = await client.list_tasks(ListTasksRequest(status=TaskState.TASK_STATE_FAILED))
    assert [t.id for t in listed.tasks] == [other.id, one.id]
    assert {t.context_id for t in listed.tasks} == {one.context_id, other.context_id}
    assert list(failed.tasks) == []


async def test_a_repeated_message_id_answers_with_its_first_run(
    serve: Serve, config_factory: ConfigFactory
):
    async with serve(config_factory()) as gw, a2a_client(gw) as client:
        first = await send(client, user_message("once"))
        message = user_message("once", first.context_id)
        again = await send(client, message)
        repeat = await send(client, message)
        history = await gw.gateway.store.history(f"agent:atlas:a2a:{first.context_id}")
    assert repeat.id == again.id
    assert [m.content for m in history].count("once") == 2


# ---------------------------------------------------------------- without the extra


async def test_without_the_extra_the_routes_name_it(
    serve: Serve, config_factory: ConfigFactory, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "a2a", None)  # as if a2a-sdk were not installed
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        card = await http.get("/.well-known/agent-card.json", headers=bearer(gw))
        rpc = await http.post("/a2a/atlas", headers=bearer(gw), json={"jsonrpc": "2.0"})
    for answer in (card, rpc):
        error = answer.json()["error"]
        assert error["code"] == "EXTRA_NOT_INSTALLED"
        assert "sessiongate[a2a]" in error["message"]


# ---------------------------------------------------------------- streaming


async def test_stream_a_message(serve: Serve, config_factory: ConfigFactory):
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, a2a_client(gw, streaming=True) as client:
        request = SendMessageRequest(message=user_message("hello"))
        events = [event async for event in client.send_message(request)]
        context_id = events[0].task.context_id
        again = SendMessageRequest(message=user_message("again", context_id))
        continued = [event async for event in client.send_message(again)]
    first = events[0].task
    assert first.status.state == TaskState.TASK_STATE_SUBMITTED
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert states == [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED]
    streamed = "".join(
        part.text
        for e in events
        if e.HasField("artifact_update")
        for part in e.artifact_update.artifact.parts
    )
    final = events[-1].status_update
    assert final.task_id == first.id and final.context_id == first.context_id
    assert final.status.message.parts[0].text == "echo: hello"
    assert streamed in ("", "echo: hello")  # the echo runtime may or may not stream deltas
    assert continued[0].task.context_id == context_id
    assert continued[-1].status_update.status.message.parts[0].text == "echo: again"


async def test_a_streamed_message_to_a_never_issued_context_is_refused(
    serve: Serve, config_factory: ConfigFactory
):
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, a2a_client(gw, streaming=True) as client:
        before = await session_keys(gw)
        request = SendMessageRequest(message=user_message("hi", NEVER_ISSUED))
        with pytest.raises(InvalidParamsError) as refused:
            _ = [event async for event in client.send_message(request)]
        assert await session_keys(gw) == before
    assert wire_of(refused.value)["error"]["code"] == "SESSION_NOT_FOUND"


# ---------------------------------------------------------------- raw JSON-RPC


async def rpc(gw: Any, method: str, params: Any, *, version: str = "1.0") -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    headers = bearer(gw) | ({"a2a-version": version} if version else {})
    async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
        response = await http.post("/a2a/atlas", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_message_needs_an_id_and_parts(serve: Serve, config_factory: ConfigFactory):
    async with serve(config_factory()) as gw:
        no_id = await rpc(gw, "SendMessage", {"message": {"role": "ROLE_USER",
                                                          "parts": [{"text": "hi"}]}})  # fmt: skip
        no_parts = await rpc(gw, "SendMessage", {"message": {"role": "ROLE_USER",
                                                             "messageId": "m1"}})  # fmt: skip
        picture = {"role": "ROLE_USER", "messageId": "m2", "parts": [{"url": "https://x/y.png"}]}
        file_part = await rpc(gw, "SendMessage", {"message": picture})
    for answer in (no_id, no_parts, file_part):
        assert answer["error"]["code"] == -32602, answer
        wire = answer["error"]["data"][0]["metadata"]
        assert wire["error"]["code"] == "INVALID_REQUEST", wire


async def test_a_refused_message_without_context_starts_no_session(
    serve: Serve, config_factory: ConfigFactory
):
    """A message refused for its own content (a file part, no text, an overlong messageId)
    starts no context: the refusal comes before the session is created."""
    refused = [
        {"messageId": "m-url", "parts": [{"url": "https://x/y.png"}]},
        {"messageId": "m-empty", "parts": [{"text": ""}]},
        {"messageId": "m" * 300, "parts": [{"text": "hi"}]},
    ]
    async with serve(config_factory(gateway__sessions={"createOnMiss": False})) as gw:
        before = await session_keys(gw)
        answers = [
            await rpc(gw, "SendMessage", {"message": {"role": "ROLE_USER", **m}}) for m in refused
        ]
        after = await session_keys(gw)
    for answer in answers:
        assert answer["error"]["code"] == -32602, answer
        assert answer["error"]["data"][0]["metadata"]["error"]["code"] == "INVALID_REQUEST"
    assert after == before


async def test_a_version_mismatch_is_refused_without_a_log_line(
    serve: Serve, config_factory: ConfigFactory, caplog: pytest.LogCaptureFixture
):
    """A client's wrong A2A-Version is its own mistake: answered, not logged per request."""
    message = {"role": "ROLE_USER", "messageId": "m-v", "parts": [{"text": "hi"}]}
    async with serve(config_factory()) as gw:
        with caplog.at_level(logging.DEBUG, logger="a2a"):
            answer = await rpc(gw, "SendMessage", {"message": message}, version="0.3")
    assert answer["error"]["code"] == -32009, answer  # VERSION_NOT_SUPPORTED
    assert not [r for r in caplog.records if "Version mismatch" in r.getMessage()]


async def test_protocol_0_3_method_names_are_served(serve: Serve, config_factory: ConfigFactory):
    message = {"role": "user", "messageId": "m-03", "kind": "message",
               "parts": [{"kind": "text", "text": "hello"}]}  # fmt: skip
    stray = {**message, "messageId": "m-03-b", "contextId": NEVER_ISSUED}
    async with serve(config_factory(gateway__sessions={"createOnMiss": False})) as gw:
        answer = await rpc(gw, "message/send", {"message": message}, version="")
        refused = await rpc(gw, "message/send", {"message": stray}, version="")
    assert refused["error"]["code"] == -32602, refused
    assert refused["error"]["data"]["error"]["code"] == "SESSION_NOT_FOUND"  # 0.3: data is the wire
    assert answer["result"]["kind"] == "task", answer
    assert answer["result"]["status"]["state"] == "completed", answer
    assert answer["result"]["artifacts"][0]["parts"][0]["text"] == "echo: hello"


async def test_a_body_that_is_not_clean_json_is_a_structured_error(
    serve: Serve, config_factory: ConfigFactory
):
    deep = '{"a":' * 40 + "1" + "}" * 40
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        answers = [
            await http.post("/a2a/atlas", headers=bearer(gw), content=body)
            for body in (deep, '{"jsonrpc": "2.0", "id": 1, "method": NaN}', "{")
        ]
    for response in answers:
        assert response.status_code == 200
        error = response.json()["error"]
        assert error["code"] == -32600, error
        assert error["data"][0]["metadata"]["error"]["code"] == "INVALID_REQUEST"


# ---------------------------------------------------------------- a task still running


@contextlib.asynccontextmanager
async def held_webhook() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A webhook agent's upstream that answers only once the test releases it."""
    release = asyncio.Event()

    async def reply(request: Request) -> JSONResponse:
        await release.wait()
        return JSONResponse({"reply": "done"})

    async with upstream(Starlette(routes=[Route("/", reply, methods=["POST"])])) as fake:
        yield fake.url, release


def slow_agents(url: str) -> list[dict[str, Any]]:
    return [{"id": "atlas", "default": True},
            {"id": "slow", "model": "webhook", "webhook": {"url": url}}]  # fmt: skip


def queued(text: str, context_id: str | None = None) -> SendMessageRequest:
    """A message answered at once (returnImmediately): its task is not waited for."""
    request = SendMessageRequest(message=user_message(text, context_id))
    request.configuration.return_immediately = True
    return request


async def test_cancel_a_task_that_has_not_started(serve: Serve, config_factory: ConfigFactory):
    async with (
        held_webhook() as (url, release),
        serve(config_factory(agents={"list": slow_agents(url)})) as gw,
        a2a_client(gw, "slow") as client,
    ):
        first = await send(client, user_message("first"), queued("first"))
        second = await send(client, user_message("second"), queued("second", first.context_id))
        cancelled = await client.cancel_task(CancelTaskRequest(id=second.id))
        with pytest.raises(TaskNotCancelableError) as started:
            await client.cancel_task(CancelTaskRequest(id=first.id))
        release.set()

        async def first_ended() -> bool:
            task = await client.get_task(GetTaskRequest(id=first.id))
            return bool(task.status.state != TaskState.TASK_STATE_WORKING)

        await aeventually(first_ended, what="the first task ended")
        later = await client.get_task(GetTaskRequest(id=second.id))
        history = await gw.gateway.store.history(f"agent:slow:a2a:{first.context_id}")
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert later.status.state == TaskState.TASK_STATE_CANCELED
    assert wire_of(started.value)["error"]["code"] == "CONFLICT"
    assert [m.content for m in history] == ["first", "second", "done"]  # second never ran


async def test_subscribe_to_a_running_task_and_cancel_is_refused(
    serve: Serve, config_factory: ConfigFactory
):
    async with held_webhook() as (url, release):
        agents = [{"id": "atlas", "default": True},
                  {"id": "slow", "model": "webhook", "webhook": {"url": url}}]  # fmt: skip
        async with (
            serve(config_factory(agents={"list": agents})) as gw,
            a2a_client(gw, "slow") as plain,
            a2a_client(gw, "slow", streaming=True) as client,
        ):
            request = SendMessageRequest(message=user_message("work"))
            request.configuration.return_immediately = True
            sent = await send(plain, request.message, request)
            with pytest.raises(TaskNotCancelableError):
                await client.cancel_task(CancelTaskRequest(id=sent.id))
            events = client.subscribe(SubscribeToTaskRequest(id=sent.id))
            first = await anext(events)
            release.set()
            rest = [event async for event in events]
            with pytest.raises(UnsupportedOperationError):  # it has ended
                _ = [event async for event in client.subscribe(SubscribeToTaskRequest(id=sent.id))]
            done = await client.get_task(GetTaskRequest(id=sent.id))
    assert first.task.id == sent.id
    assert first.task.status.state == TaskState.TASK_STATE_WORKING
    assert rest[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert rest[-1].status_update.status.message.parts[0].text == "done"
    assert done.status.state == TaskState.TASK_STATE_COMPLETED and reply_of(done) == "done"


# ---------------------------------------------------------------- the same limits as every route


async def test_a2a_requests_have_the_gateways_limits(serve: Serve, config_factory: ConfigFactory):
    config = config_factory(
        gateway__maxBodyBytes=2048,
        gateway__limits={"requestsPerSecondPerToken": 0.001, "requestBurstPerToken": 3},
    )
    big = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
           "params": {"message": {"messageId": "m", "parts": [{"text": "x" * 4096}]}}}  # fmt: skip
    async with serve(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=bearer(gw)) as http:
        too_big = await http.post("/a2a/atlas", json=big)
        answers = [await http.get("/.well-known/agent-card.json") for _ in range(3)]
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert [a.status_code for a in answers] == [200, 200, 429]  # the burst of 3 includes too_big
    assert answers[-1].json()["error"]["code"] == "TOO_MANY_REQUESTS"


async def test_agent_to_agent_rules_decide_who_may_start_a_context(
    serve: Serve, config_factory: ConfigFactory
):
    a2a_rules = {"enabled": True, "allow": ["peggy"]}  # only peggy's sessions are reachable
    config = config_factory(tools={"sessions": {"visibility": "all"}, "agentToAgent": a2a_rules})
    async with serve(config) as gw:
        before = await session_keys(gw)
        async with a2a_client(gw, "atlas", caller="agent:peggy:main") as to_atlas:
            with pytest.raises(InvalidParamsError) as refused:
                await send(to_atlas, user_message("hi"))
            with pytest.raises(InvalidParamsError) as hidden:
                await send(to_atlas, user_message("hi", "agent:atlas:main"))
        assert await session_keys(gw) == before
        async with a2a_client(gw, "peggy", caller="agent:atlas:main") as to_peggy:
            task = await send(to_peggy, user_message("hi"))
    error = wire_of(refused.value)["error"]
    assert error["code"] == "SESSION_NOT_FOUND"
    assert "tools.agentToAgent.allow" in error["message"]
    assert wire_of(hidden.value)["error"]["code"] == "SESSION_NOT_FOUND"
    assert task.status.state == TaskState.TASK_STATE_COMPLETED


async def test_contexts_and_tasks_on_postgresql(
    serve: Serve, config_factory: ConfigFactory, postgres_url: str
):
    config = config_factory(
        storage={"url": postgres_url}, gateway__sessions={"createOnMiss": False}
    )
    async with serve(config) as gw, a2a_client(gw, streaming=True) as client:
        events = [
            e async for e in client.send_message(SendMessageRequest(message=user_message("a")))
        ]
        context_id = events[0].task.context_id
        again = SendMessageRequest(message=user_message("b", context_id))
        last = [e async for e in client.send_message(again)][-1].status_update
        task = await client.get_task(GetTaskRequest(id=last.task_id))
        listed = await client.list_tasks(ListTasksRequest(context_id=context_id))
        with pytest.raises(InvalidParamsError):
            _ = [
                e
                async for e in client.send_message(
                    SendMessageRequest(message=user_message("c", NEVER_ISSUED))
                )
            ]
    assert last.status.state == TaskState.TASK_STATE_COMPLETED
    assert [m.parts[0].text for m in task.history] == ["b", "echo: b"]
    assert len(listed.tasks) == 2


# ---------------------------------------------------------------- HTTP+JSON


async def test_http_json_binding(serve: Serve, config_factory: ConfigFactory):
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, a2a_client(gw, "peggy", binding="HTTP+JSON") as client:
        first = await send(client, user_message("one"))
        second = await send(client, user_message("two", first.context_id))
        task = await client.get_task(GetTaskRequest(id=second.id))
        listed = await client.list_tasks(ListTasksRequest(context_id=first.context_id))
        before = await session_keys(gw)
        with pytest.raises(InvalidParamsError) as refused:
            await send(client, user_message("hi", NEVER_ISSUED))
        assert await session_keys(gw) == before
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id="no-such-task"))
    assert reply_of(second) == "echo: two" and second.context_id == first.context_id
    assert [m.parts[0].text for m in task.history] == ["two", "echo: two"]
    assert [t.id for t in listed.tasks] == [second.id, first.id]
    assert wire_of(refused.value)["error"]["code"] == "SESSION_NOT_FOUND"


async def test_http_json_streams_and_refuses_bad_bodies(
    serve: Serve, config_factory: ConfigFactory
):
    async with serve(config_factory()) as gw:
        async with a2a_client(gw, binding="HTTP+JSON", streaming=True) as client:
            request = SendMessageRequest(message=user_message("hello"))
            events = [event async for event in client.send_message(request)]
        async with httpx.AsyncClient(base_url=gw.url, headers=bearer(gw)) as http:
            deep = await http.post("/a2a/atlas/rest/message:send", content="[" * 40 + "]" * 40)
            nowhere = await http.post("/a2a/zed/rest/message:send", json={})
    assert events[-1].status_update.status.message.parts[0].text == "echo: hello"
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "INVALID_REQUEST"
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "AGENT_NOT_FOUND"
