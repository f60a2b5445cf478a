"""The LLM runtime: any OpenAI-compatible endpoint, with the sessions_* tools offered.

A tool call that fails comes back to the model as the error's wire form (a
tool result it can read), so a model that hits SESSION_NOT_FOUND can use the
suggestions and retry.

The `openai` SDK is imported, and the client made, at an agent's first turn: the SDK is
~20 MiB of memory that a gateway whose LLM agents are idle does not need. The model call
itself is one aiohttp request with the SDK's head, retries and errors (`llm_http`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from sessiongate.catchall import internal_error
from sessiongate.errors import SessionGateError
from sessiongate.request_ids import begin_request
from sessiongate.resolver import Caller
from sessiongate.runtime.base import Emit, Turn
from sessiongate.tools import TOOLS
from sessiongate.wire import decode_json, dump_json_bytes

if TYPE_CHECKING:
    from sessiongate.runtime.llm_http import ModelClient

__all__ = ["LlmRuntime", "ModelEndpoint"]


@dataclass(frozen=True, slots=True)
class ModelEndpoint:
    """Where an agent's model answers: an OpenAI-compatible base URL."""

    base_url: str
    api_key: str
    timeout_seconds: float

    async def connect(self) -> ModelClient:
        from sessiongate.runtime.llm_http import connect

        return await connect(self.base_url, self.api_key, self.timeout_seconds)


def _tool_definitions(offered: Collection[str]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.json_schema(),
            },
        }
        for spec in TOOLS.values()
        if spec.name in offered
    ]


def _transcript(turn: Turn, system_prompt: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": f"{system_prompt}\nYour session key: {turn.session.key}"}
    ]
    for past in turn.history:
        if past.role in ("user", "assistant"):
            messages.append({"role": past.role, "content": past.content})
    messages.append({"role": "user", "content": turn.message})
    return messages


def _parsed(answer: bytes) -> object:
    """The model's answer as JSON, or as text when it is not JSON (then it has no message)."""
    try:
        return orjson.loads(answer)
    except orjson.JSONDecodeError:  # what orjson refuses and `json` reads (NaN), or not JSON
        pass
    try:
        return json.loads(answer)
    except ValueError:
        return answer.decode("utf-8", "replace")


def _first_message(answer: object) -> dict[str, Any]:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise RuntimeError(f"the model's answer has no message: {str(answer)[:200]}")
    return message


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


class LlmRuntime:
    name = "llm"
    uses_history = True

    def __init__(
        self,
        endpoint: ModelEndpoint,
        model: str,
        system_prompt: str,
        max_tool_rounds: int,
        offered: Collection[str] = tuple(TOOLS),
    ) -> None:
        """`offered`: the tools shown to the model (the gateway passes `gateway.tools.allow`;
        a call to another is refused on the invoke path all the same)."""
        self.endpoint = endpoint
        self.client: ModelClient | None = None  # made at the first turn
        self._connecting = asyncio.Lock()
        self.model = model
        self.system_prompt = system_prompt
        self.max_tool_rounds = max_tool_rounds
        self.tools = _tool_definitions(offered)
        # the request body around the messages, encoded once (the tools' schemas are most of it)
        self._body_head = b'{"model":' + dump_json_bytes(model) + b',"messages":'
        self._body_tail = (b',"tools":' + dump_json_bytes(self.tools) if self.tools else b"") + b"}"

    async def run(self, turn: Turn, emit: Emit) -> str:
        messages = _transcript(turn, self.system_prompt)
        for _ in range(self.max_tool_rounds):
            choice = await self._complete(messages)
            calls = [c for c in _tool_calls(choice) if c.get("type") == "function"]
            if not calls:
                content = choice.get("content")
                reply = content if isinstance(content, str) else ""
                await emit(reply)
                return reply
            messages.append({k: v for k, v in choice.items() if v is not None})
            for call in calls:
                function = call.get("function") or {}
                name, arguments = function.get("name") or "", function.get("arguments") or ""
                result = await self._call_tool(turn, str(name), str(arguments))
                messages.append({"role": "tool", "tool_call_id": call.get("id"), "content": result})
        raise RuntimeError(f"model made more than {self.max_tool_rounds} rounds of tool calls")

    async def close(self) -> None:
        # unclosed, the SDK's client closes itself on garbage collection, from whatever
        # event loop is running then (not the one its connections belong to)
        if self.client is not None:
            await self.client.close()

    async def _complete(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The model's message: the first choice of a chat completion, as JSON."""
        # The body is bytes, encoded here by orjson around the parts encoded once (the SDK's
        # chat.completions.create() would first walk it against its TypedDicts: ~10 ms per
        # turn; its post(body=…) would encode it all with `json`), and the answer's bytes are
        # read here as plain JSON (building the SDK's ChatCompletion models was ~15% of a
        # turn's CPU). The client sends them with the SDK's head, retries and errors.
        if self.client is None:
            async with self._connecting:  # concurrent first turns: one client
                if self.client is None:
                    self.client = await self.endpoint.connect()
        body = self._body_head + dump_json_bytes(messages) + self._body_tail
        answer = await self.client.post(body)
        return _first_message(_parsed(answer))

    async def _call_tool(self, turn: Turn, name: str, raw_arguments: str) -> str:
        """One tool call of the model: the LLM surface's edge (its one catch-all)."""
        begin_request()
        caller = Caller(turn.session.key, "llm")
        try:
            arguments = decode_json(raw_arguments or "{}", f"{name} arguments")
            result: dict[str, Any] = {
                "ok": True,
                "result": await turn.invoke_tool(name, arguments, caller),
            }
        except SessionGateError as exc:
            result = exc.to_wire()
        except Exception as exc:
            result = internal_error(exc, "llm", name).to_wire()
        return json.dumps(result)
