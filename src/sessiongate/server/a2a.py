"""A2A surface (Agent2Agent, the official `a2a-sdk`): agent cards, messages and tasks.

Served on the gateway's port when the ``a2a`` extra is installed (`a2a_mount.py`
imports this module on first use), behind the gateway token:

- ``GET /.well-known/agent-card.json``: the default agent's card;
  ``GET /a2a/{agentId}/.well-known/agent-card.json``: each agent's. A card names
  the agent's skill, its capabilities (streaming), the gateway token as a bearer
  security scheme, and its interface: JSON-RPC at ``/a2a/{agentId}``.
- ``POST /a2a/{agentId}``: JSON-RPC 2.0, protocol 1.0 (and 0.3's method names),
  dispatched by the SDK's `JsonRpcDispatcher` to `GatewayRequestHandler`.

The mapping, each a thin translation onto the gateway:

- a **context is a session**. A message without ``contextId`` starts one on
  purpose (`Gateway.create_context`: ``agent:<id>:a2a:<uuid>``, origin ``a2a``);
  a ``contextId`` is an *address*: ``agent:<id>:a2a:<contextId>``, or the session
  key itself when it holds a ``:``. The resolver decides, as for any address:
  visibility, agent-to-agent, and for a context nobody issued the create-on-miss
  policy (refused under ``false``: nothing is created).
- a **task is a run**: its id is the run id, its history the run's messages in the
  session's transcript, its artifact the reply. The message's ``messageId`` is
  the send's idempotency key, so a retried message answers with its first run.
- a refusal is a JSON-RPC error whose ``data`` (the SDK's ``ErrorInfo``
  ``metadata``) is the gateway's one wire form: ``{"ok": false, "error": {...}}``.
- the caller: the ``X-Session-Key`` header names the caller's own session (as on
  the HTTP GET routes and MCP); without it the caller is the operator.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler, validate_request_params
from a2a.server.request_handlers.response_helpers import agent_card_to_dict, build_error_response
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.routes.rest_routes import create_rest_routes
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Artifact,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    HTTPAuthSecurityScheme,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    Role,
    SecurityRequirement,
    SecurityScheme,
    SendMessageRequest,
    StringList,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, TransportProtocol
from a2a.utils.errors import (
    A2AError,
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.errors import InternalError as A2AInternalError
from a2a.utils.errors import InvalidRequestError as A2AInvalidRequestError
from google.protobuf.json_format import MessageToDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from sessiongate import __version__
from sessiongate.catchall import internal_error
from sessiongate.config import AgentConfig
from sessiongate.errors import (
    AgentNotFoundError,
    ConflictError,
    InvalidRequestError,
    RunNotFoundError,
    SessionGateError,
)
from sessiongate.fields import MAX_WAIT_SECONDS
from sessiongate.gateway import Gateway
from sessiongate.keys import SessionKind, a2a_context_key, agent_of_key
from sessiongate.outcomes import SendOutcome
from sessiongate.resolver import Caller
from sessiongate.runtime.runs import CANCELLED, RunEvent, RunStream
from sessiongate.server.requests import read_body
from sessiongate.store.base import MessageRecord, RunRecord, RunStatus
from sessiongate.tools.args import ListArgs, SendArgs, SessionArgs
from sessiongate.tools.base import validate_args
from sessiongate.wire import check_text, decode_json

__all__ = [
    "ENTRY_POINT",
    "SESSION_HEADER",
    "GatewayRequestHandler",
    "a2a_app",
    "a2a_error",
    "agent_card",
    "context_id_of",
    "context_reference",
]

ENTRY_POINT = "a2a"
SESSION_HEADER = "x-session-key"
SECURITY_SCHEME = "gatewayToken"
SEND_WAIT_SECONDS = 30.0  # as sessions_send: then the task is answered as still working
MAX_TASKS_PAGE = 100
MAX_CONTEXTS = 20  # a ListTasks without contextId reads this agent's newest A2A contexts
TEXT = "text/plain"
REST_PATH = "/rest"  # HTTP+JSON at /a2a/{agentId}/rest/…

T = TypeVar("T")

RUN_STATES: dict[str, TaskState] = {  # and an interrupted run that was cancelled: CANCELED
    RunStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    RunStatus.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    RunStatus.FAILED: TaskState.TASK_STATE_FAILED,
    RunStatus.INTERRUPTED: TaskState.TASK_STATE_FAILED,
}
SEND_STATES: dict[str, TaskState] = {
    "ok": TaskState.TASK_STATE_COMPLETED,
    "error": TaskState.TASK_STATE_FAILED,
    "accepted": TaskState.TASK_STATE_SUBMITTED,
    "timeout": TaskState.TASK_STATE_WORKING,
}


class _ClientMistakes(logging.Filter):
    """Drops what the SDK logs about a client's own mistakes: a malformed request (with a
    traceback, at ERROR) and each refusal (at WARNING). The access log has one line per
    request already; a hostile client must not be able to flood the log with tracebacks.
    Internal errors (-32603) and the SDK's unhandled exceptions still get through."""

    MALFORMED = (
        "Failed to validate base JSON-RPC request",
        "Failed to parse request params",
        "Parse error",  # HTTP+JSON
    )
    REFUSED = ("Request Error", "Request error", "Version mismatch")  # JSON-RPC, HTTP+JSON

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(self.MALFORMED):
            return False
        return not (message.startswith(self.REFUSED) and record.levelno < logging.ERROR)


for _name in (
    "a2a.server.routes.jsonrpc_dispatcher",
    "a2a.compat.v0_3.jsonrpc_adapter",
    "a2a.utils.error_handlers",
    "a2a.utils.version_validator",  # an A2A-Version header the method is not served in
):
    logging.getLogger(_name).addFilter(_ClientMistakes())


# ---------------------------------------------------------------- contexts and errors


def context_reference(agent_id: str, context_id: str) -> str:
    """The session a ``contextId`` addresses: a session key as is (it holds a ``:``),
    else ``agent:<agentId>:a2a:<contextId>``."""
    return context_id if ":" in context_id else a2a_context_key(agent_id, context_id)


def context_id_of(agent_id: str, key: str) -> str:
    """The ``contextId`` that names session `key` at agent `agent_id`'s endpoint."""
    prefix = a2a_context_key(agent_id, "")
    return key.removeprefix(prefix) if key.startswith(prefix) else key


def a2a_error(error: SessionGateError) -> A2AError:
    """A gateway error as the A2A error the SDK answers with; its data is the wire form."""
    wire = error.to_wire()
    message = f"{error.code}: {error.message}"
    if isinstance(error, RunNotFoundError):
        return TaskNotFoundError(message, data=wire)
    if error.http_status >= 500:
        return A2AInternalError(message, data=wire)
    return InvalidParamsError(message, data=wire)


async def _guarded(where: str, work: Awaitable[T]) -> T:
    """Await `work`, turning a gateway error (or any other: the catch-all) into an A2A one."""
    try:
        return await work
    except A2AError:
        raise
    except SessionGateError as exc:
        raise a2a_error(exc) from None
    except Exception as exc:  # the one catch-all at this surface's edge
        raise a2a_error(internal_error(exc, ENTRY_POINT, where)) from None


async def _guarded_events(where: str, events: AsyncGenerator[Event]) -> AsyncGenerator[Event]:
    """`_guarded` for a stream of events; closes `events` when the stream ends or is dropped."""
    try:
        async with aclosing(events):
            async for event in events:
                yield event
    except A2AError:
        raise
    except SessionGateError as exc:
        raise a2a_error(exc) from None
    except Exception as exc:  # the one catch-all at this surface's edge
        raise a2a_error(internal_error(exc, ENTRY_POINT, where)) from None


async def _followed(stream: RunStream, accepted: SendOutcome) -> AsyncGenerator[RunEvent]:
    """The events of `accepted`'s run, pulled from the gateway's one run-stream loop."""
    events: asyncio.Queue[RunEvent | None] = asyncio.Queue()

    async def emit(event: RunEvent) -> None:
        events.put_nowait(event)

    follower = asyncio.create_task(stream.follow(accepted, emit, MAX_WAIT_SECONDS))
    follower.add_done_callback(lambda _: events.put_nowait(None))
    try:
        while (event := await events.get()) is not None:
            yield event
        await follower  # its failure, if it failed
    finally:
        follower.cancel()


async def _events_of(queue: asyncio.Queue[RunEvent], run_id: str) -> AsyncGenerator[RunEvent]:
    """The events of one run from a session's queue, up to and including its end."""
    while True:
        event = await queue.get()
        if event["runId"] != run_id:
            continue
        yield event
        if event["event"] in ("run.completed", "run.failed"):
            return


def _run_event(event: RunEvent, context_id: str) -> Event | None:
    """A run event as the A2A event a streaming client gets (None: nothing to tell)."""
    run_id: str = event["runId"]
    name = event["event"]
    if name == "run.delta":
        return TaskArtifactUpdateEvent(
            task_id=run_id,
            context_id=context_id,
            artifact=_reply_artifact(run_id, event["delta"]),
            append=True,
        )
    if name == "run.started":
        status = TaskStatus(state=TaskState.TASK_STATE_WORKING)
    elif name == "run.completed":
        status = TaskStatus(state=TaskState.TASK_STATE_COMPLETED)
        reply = _text_message(
            Role.ROLE_AGENT, event["reply"], f"{run_id}:reply", context_id, run_id
        )
        status.message.CopyFrom(reply)
    elif name == "run.failed":
        cancelled = CANCELLED in str((event.get("error") or {}).get("message", ""))
        state = TaskState.TASK_STATE_CANCELED if cancelled else TaskState.TASK_STATE_FAILED
        status = TaskStatus(state=state)
        error = json.dumps(event.get("error"), ensure_ascii=False)
        status.message.CopyFrom(
            _text_message(Role.ROLE_AGENT, error, f"{run_id}:status", context_id, run_id)
        )
    else:
        return None
    _timestamp(status, datetime.now(UTC).timestamp())
    return TaskStatusUpdateEvent(task_id=run_id, context_id=context_id, status=status)


# ---------------------------------------------------------------- cards


def agent_card(agent: AgentConfig, base_url: str) -> AgentCard:
    """The card of `agent`, its interface at this gateway (`base_url`)."""
    name = agent.name or agent.id
    return AgentCard(
        name=name,
        description=f"{name}, an agent hosted by sessiongate. A contextId is a session of "
        f"{agent.id}: one the gateway issued, or a session key; an unknown one may be refused "
        "(SESSION_NOT_FOUND, with suggestions in the error's data).",
        version=__version__,
        supported_interfaces=[
            AgentInterface(
                url=f"{base_url}/a2a/{agent.id}",
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=PROTOCOL_VERSION_CURRENT,
            ),
            AgentInterface(
                url=f"{base_url}/a2a/{agent.id}{REST_PATH}",
                protocol_binding=TransportProtocol.HTTP_JSON.value,
                protocol_version=PROTOCOL_VERSION_CURRENT,
            ),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes={
            SECURITY_SCHEME: SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer", description="the gateway token (gateway.auth.token)"
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={SECURITY_SCHEME: StringList()})],
        default_input_modes=[TEXT, "application/json"],
        default_output_modes=[TEXT],
        skills=[
            AgentSkill(
                id="converse",
                name=f"Talk to {name}",
                description=f"Send {name} a message in a context (a session) and get its reply.",
                tags=["chat", "sessions"],
                examples=["hello"],
            )
        ],
    )


# ---------------------------------------------------------------- tasks


def _timestamp(message: Any, seconds: float | None) -> None:
    if seconds is not None:
        message.timestamp.FromDatetime(datetime.fromtimestamp(seconds, UTC))


def _text_message(role: Role, text: str, message_id: str, context_id: str, task_id: str) -> Message:
    return Message(
        message_id=message_id,
        context_id=context_id,
        task_id=task_id,
        role=role,
        parts=[Part(text=text)],
    )


def _reply_artifact(run_id: str, reply: str) -> Artifact:
    return Artifact(artifact_id=f"{run_id}:reply", name="reply", parts=[Part(text=reply)])


def transcript_message(message: MessageRecord, context_id: str) -> Message:
    """One transcript message as an A2A message of its run's task."""
    role = Role.ROLE_USER if message.role == "user" else Role.ROLE_AGENT
    run_id = message.run_id or ""
    return _text_message(role, message.content, f"{run_id}:{message.seq}", context_id, run_id)


def task_of_run(
    run: RunRecord, messages: list[MessageRecord], context_id: str, history_length: int | None
) -> Task:
    """A run as a task: its state, its reply as the artifact, its messages as history."""
    history = [transcript_message(m, context_id) for m in messages]
    if history_length is not None:
        history = history[-history_length:] if history_length else []
    replies = [m.content for m in messages if m.role != "user"]
    state = RUN_STATES.get(run.status, TaskState.TASK_STATE_UNSPECIFIED)
    if run.status == RunStatus.INTERRUPTED and run.error == CANCELLED:
        state = TaskState.TASK_STATE_CANCELED
    status = TaskStatus(state=state)
    _timestamp(status, run.finished_at or run.created_at)
    if run.error:
        status.message.CopyFrom(
            _text_message(
                Role.ROLE_AGENT, run.error, f"{run.run_id}:status", context_id, run.run_id
            )
        )
    artifacts = [_reply_artifact(run.run_id, replies[-1])] if replies else []
    return Task(
        id=run.run_id, context_id=context_id, status=status, artifacts=artifacts, history=history
    )


def _check_required(message: Message) -> None:
    """What A2A requires of a message a client sends: an id and at least one part."""
    problems = [
        f"message.{name}: required"
        for name, present in (("messageId", message.message_id), ("parts", message.parts))
        if not present
    ]
    if problems:
        raise InvalidRequestError(
            f"A2A message: {'; '.join(problems)}", details={"problems": problems}
        )


def message_text(message: Message) -> str:
    """What an A2A message says, as the gateway's message text: its text parts, and its
    data parts as JSON, one per line; other parts (files, URLs) are refused."""
    texts: list[str] = []
    for part in message.parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(part.text)
        elif kind == "data":
            texts.append(json.dumps(MessageToDict(part.data), ensure_ascii=False))
        else:
            raise InvalidRequestError(
                f"A2A message part of kind {kind!r}: only text and data parts are accepted",
                details={"problems": [f"message.parts: {kind} parts are not accepted"]},
            )
    return "\n".join(texts)


def _sent_task(call: _Call, message: Message, outcome: SendOutcome, text: str) -> Task:
    """The task a send answers with: the message, and the reply once there is one."""
    run_id = outcome.run_id
    context_id = context_id_of(call.agent_id, outcome.session_key)
    asked = _text_message(Role.ROLE_USER, text, message.message_id, context_id, run_id)
    status = TaskStatus(state=SEND_STATES[outcome.status])
    _timestamp(status, datetime.now(UTC).timestamp())
    task = Task(id=run_id, context_id=context_id, status=status, history=[asked])
    if outcome.reply is not None:
        task.artifacts.append(_reply_artifact(run_id, outcome.reply))
        answer = _text_message(
            Role.ROLE_AGENT, outcome.reply, f"{run_id}:reply", context_id, run_id
        )
        task.history.append(answer)
    if outcome.error is not None:
        error = json.dumps(outcome.error, ensure_ascii=False)
        status.message.CopyFrom(
            _text_message(Role.ROLE_AGENT, error, f"{run_id}:status", context_id, run_id)
        )
    return task


# ---------------------------------------------------------------- the request handler


@dataclass(frozen=True, slots=True)
class _Call:
    """Who calls which agent's endpoint."""

    agent_id: str
    caller: Caller


class GatewayRequestHandler(RequestHandler):
    """The A2A requests, each a thin translation onto the gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def _call(self, context: ServerCallContext) -> _Call:
        state = context.state
        own = state.get("headers", {}).get(SESSION_HEADER)
        if own is not None:
            check_text(own, SESSION_HEADER)
        caller = await self.gateway.caller_for(own or None, ENTRY_POINT)
        return _Call(state["agent_id"], caller)

    # -- messages

    # The SDK's generic required-field check (`validate_request_params`) costs ~150 us
    # per message, a sixth of a whole send: a message's required fields are checked here.
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        return await _guarded("SendMessage", self._send(params, context))

    async def _send(self, params: SendMessageRequest, context: ServerCallContext) -> Task:
        call = await self._call(context)
        wait = 0.0 if params.configuration.return_immediately else SEND_WAIT_SECONDS
        args = await self._send_args(call, params.message, wait)
        outcome = await self.gateway.send(args, call.caller)
        return _sent_task(call, params.message, outcome, args.message)

    async def _send_args(self, call: _Call, message: Message, wait: float) -> SendArgs:
        """The gateway's send for an A2A message (its parts, its context, its messageId).

        Everything is checked before a new context is started: a refusal creates nothing."""
        _check_required(message)
        reference = self._reference_of(call, message)
        raw: dict[str, Any] = {
            "sessionKey": reference or a2a_context_key(call.agent_id, "new"),
            "message": message_text(message),
            "timeoutSeconds": wait,
            "idempotencyKey": message.message_id,
        }
        args = validate_args(SendArgs, raw, "SendMessage")
        if reference is not None:
            return args
        created = await self.gateway.create_context(call.agent_id, call.caller)
        return args.model_copy(update={"session_key": created.key})

    def _reference_of(self, call: _Call, message: Message) -> str | None:
        """The session a message's contextId addresses (resolved by the send itself), or
        None: the message starts a new context."""
        if message.task_id:
            raise InvalidRequestError(
                "a task here is one run and ends with its reply: send the next message in the "
                "same contextId, without taskId",
                details={"problems": ["message.taskId: not accepted"], "taskId": message.task_id},
            )
        if not message.context_id:
            return None
        check_text(message.context_id, "contextId")
        reference = context_reference(call.agent_id, message.context_id)
        key_agent = agent_of_key(self.gateway.canonical_key(reference))
        if key_agent is not None and key_agent != call.agent_id:
            raise InvalidRequestError(
                f"contextId {message.context_id!r} is a session of agent {key_agent!r}: send it "
                f"to /a2a/{key_agent}",
                details={"problems": ["message.contextId: another agent's session"]},
            )
        return reference

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        async with aclosing(
            _guarded_events("SendStreamingMessage", self._stream(params, context))
        ) as events:
            async for event in events:
                yield event

    async def _stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        """The task at once, then its run's events as A2A events, until the run ends."""
        call = await self._call(context)
        args = await self._send_args(call, params.message, 0.0)
        with RunStream() as stream:
            accepted = await self.gateway.send(args, call.caller, stream)
            yield _sent_task(call, params.message, accepted, args.message)
            if accepted.status != "accepted":
                return  # a repeated messageId whose run has already ended
            context_id = context_id_of(call.agent_id, accepted.session_key)
            async for event in _followed(stream, accepted):
                translated = _run_event(event, context_id)
                if translated is not None:
                    yield translated

    # -- tasks

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        return await _guarded("GetTask", self._get_task(params, context))

    async def _get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        call = await self._call(context)
        run, messages = await self._run(call, params.id)
        length = params.history_length if params.HasField("history_length") else None
        return task_of_run(run, messages, context_id_of(call.agent_id, run.session_key), length)

    async def _run(self, call: _Call, task_id: str) -> tuple[RunRecord, list[MessageRecord]]:
        """The run a task id names, at this agent's endpoint."""
        check_text(task_id, "id")
        run, messages = await self.gateway.show_run(task_id, call.caller)
        if agent_of_key(run.session_key) not in (call.agent_id, None):
            raise RunNotFoundError(f"no run {task_id!r} of agent {call.agent_id!r}", details={})
        return run, messages

    @validate_request_params
    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        return await _guarded("CancelTask", self._cancel_task(params, context))

    async def _cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        call = await self._call(context)
        run, _ = await self._run(call, params.id)  # this agent's, and visible
        try:
            cancelled = await self.gateway.cancel_run(run.run_id, call.caller)
        except ConflictError as exc:
            raise TaskNotCancelableError(f"{exc.code}: {exc.message}", data=exc.to_wire()) from None
        context_id = context_id_of(call.agent_id, cancelled.session_key)
        return task_of_run(cancelled, [], context_id, None)

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        return await _guarded("ListTasks", self._list_tasks(params, context))

    async def _list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        """The runs of one context, or (without contextId) of this agent's newest A2A
        contexts the caller may see; newest first, without history."""
        call = await self._call(context)
        size = min(params.page_size or 50, MAX_TASKS_PAGE)
        runs: list[tuple[str, RunRecord]] = []
        for reference in await self._contexts(call, params.context_id):
            key, found = await self.gateway.runs_of(reference, call.caller, size - len(runs))
            runs += [(context_id_of(call.agent_id, key), run) for run in found]
            if len(runs) >= size:
                break
        runs.sort(key=lambda pair: pair[1].created_at, reverse=True)
        tasks = [task_of_run(run, [], context_id, 0) for context_id, run in runs]
        if params.status:
            tasks = [task for task in tasks if task.status.state == params.status]
        return ListTasksResponse(tasks=tasks, page_size=size, total_size=len(tasks))

    async def _contexts(self, call: _Call, context_id: str) -> list[str]:
        """The session a contextId addresses, or this agent's newest A2A contexts."""
        if context_id:
            check_text(context_id, "contextId")
            return [context_reference(call.agent_id, context_id)]
        raw = {"agentId": call.agent_id, "kind": SessionKind.A2A.value, "limit": MAX_CONTEXTS}
        listing = await self.gateway.list_sessions(
            validate_args(ListArgs, raw, "ListTasks"), call.caller
        )
        return [session.key for session in listing.sessions]

    # -- what is not served: push notifications, the extended card, resubscription

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        async with aclosing(
            _guarded_events("SubscribeToTask", self._resubscribe(params, context))
        ) as events:
            async for event in events:
                yield event

    async def _resubscribe(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        """A running task: its state now, then its run's events until the run ends."""
        call = await self._call(context)
        run, _ = await self._run(call, params.id)
        context_id = context_id_of(call.agent_id, run.session_key)
        queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        subscription = await self.gateway.subscribe(
            SessionArgs.model_construct(session_key=run.session_key, follow_alias=True),
            call.caller,
            queue.put_nowait,
        )
        try:
            run, messages = await self._run(call, params.id)  # listening now: nothing missed
            if run.status != RunStatus.RUNNING:
                raise UnsupportedOperationError(
                    f"task {run.run_id} has ended ({run.status}): read it with GetTask",
                    data={"taskId": run.run_id, "runStatus": run.status},
                )
            yield task_of_run(run, messages, context_id, None)
            async with asyncio.timeout(MAX_WAIT_SECONDS):
                async for event in _events_of(queue, run.run_id):
                    translated = _run_event(event, context_id)
                    if translated is not None:
                        yield translated
        except TimeoutError:
            return  # still running: the client subscribes again, or reads it with GetTask
        finally:
            subscription.unsubscribe()

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError


# ---------------------------------------------------------------- routes


class _CallContexts(DefaultServerCallContextBuilder):
    """The SDK's call context, plus the agent whose endpoint was called."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["agent_id"] = request.path_params["agent_id"]
        return context


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over an already read body once, then the connection's own
    (which now tells only of a disconnect: a stream's answer listens for it)."""
    sent = False

    async def replayed() -> AsgiMessage:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class A2ASurface:
    """The A2A routes of one gateway: cards and the JSON-RPC endpoint of each agent."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.handler = GatewayRequestHandler(gateway)
        self.dispatcher = JsonRpcDispatcher(
            self.handler, context_builder=_CallContexts(), enable_v0_3_compat=True
        )
        self.rest_routes = Router(create_rest_routes(self.handler, _CallContexts()))

    def _agent(self, request: Request) -> AgentConfig:
        agent_id: str = request.path_params.get("agent_id", "")
        config = self.gateway.config
        agent = config.agent(agent_id) if agent_id else config.default_agent
        if agent is None:
            check_text(agent_id, "path")
            raise AgentNotFoundError.unknown(
                agent_id[:64], None, {"agentId": agent_id[:64], "suggestions": []}
            )
        return agent

    async def card(self, request: Request) -> Response:
        agent = self._agent(request)
        base_url = str(request.base_url).rstrip("/")
        return JSONResponse(agent_card_to_dict(agent_card(agent, base_url)))

    async def rpc(self, request: Request) -> Response:
        self._agent(request)
        body = await read_body(request, limit=self.gateway.config.gateway.max_body_bytes)
        try:
            decode_json(body)
        except InvalidRequestError as exc:  # before the SDK parses: depth, NaN, NUL, bad text
            error = A2AInvalidRequestError(f"{exc.code}: {exc.message}", data=exc.to_wire())
            return JSONResponse(build_error_response(None, error))
        replayed = Request(request.scope, _replay(body, request.receive))
        return await self.dispatcher.handle_requests(replayed)

    async def rest(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HTTP+JSON (the SDK's REST routes): the body read and checked here, like `rpc`'s."""
        request = Request(scope, receive)
        self._agent(request)
        body = await read_body(request, limit=self.gateway.config.gateway.max_body_bytes)
        if body:
            decode_json(body)  # InvalidRequestError: the wire form, 400
        await self.rest_routes(scope, _replay(body, receive), send)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/.well-known/agent-card.json", self.card, methods=["GET"]),
            Route("/a2a/{agent_id}/.well-known/agent-card.json", self.card, methods=["GET"]),
            Route("/a2a/{agent_id}", self.rpc, methods=["POST"]),
            Mount(f"/a2a/{{agent_id}}{REST_PATH}", app=self.rest),
        ]


def a2a_app(gateway: Gateway) -> ASGIApp:
    """The A2A routes as one ASGI app (authenticated by the caller: `a2a_mount.py`)."""
    return Router(routes=A2ASurface(gateway).routes())
