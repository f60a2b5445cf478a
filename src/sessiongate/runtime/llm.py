"""The LLM runtime: any OpenAI-compatible endpoint, with the sessions_* tools offered.

A tool call that fails comes back to the model as the error's wire form (a
tool result it can read), so a model that hits SESSION_NOT_FOUND can use the
suggestions and retry.

The `openai` SDK is imported, and the client made, at an agent's first turn: the SDK is
~20 MiB of memory that a gateway whose LLM agents are idle does not need.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sessiongate.catchall import internal_error
from sessiongate.errors import SessionGateError
from sessiongate.request_ids import begin_request
from sessiongate.resolver import Caller
from sessiongate.runtime.base import Emit, Turn
from sessiongate.tools import TOOLS
from sessiongate.wire import decode_json

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletion

__all__ = ["LlmRuntime", "ModelEndpoint"]


@dataclass(frozen=True, slots=True)
class ModelEndpoint:
    """Where an agent's model answers: an OpenAI-compatible base URL."""

    base_url: str
    api_key: str
    timeout_seconds: float

    def connect(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_seconds
        )


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
        self.client: AsyncOpenAI | None = None  # made at the first turn
        self.model = model
        self.system_prompt = system_prompt
        self.max_tool_rounds = max_tool_rounds
        self.tools = _tool_definitions(offered)

    async def run(self, turn: Turn, emit: Emit) -> str:
        messages = _transcript(turn, self.system_prompt)
        for _ in range(self.max_tool_rounds):
            completion = await self._complete(messages)
            choice = completion.choices[0].message
            calls = [c for c in choice.tool_calls or [] if c.type == "function"]
            if not calls:
                reply = choice.content or ""
                await emit(reply)
                return reply
            messages.append(choice.model_dump(exclude_none=True))
            for call in calls:
                result = await self._call_tool(turn, call.function.name, call.function.arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        raise RuntimeError(f"model made more than {self.max_tool_rounds} rounds of tool calls")

    async def close(self) -> None:
        # unclosed, the SDK's client closes itself on garbage collection, from whatever
        # event loop is running then (not the one its connections belong to)
        if self.client is not None:
            await self.client.close()

    async def _complete(self, messages: list[dict[str, Any]]) -> ChatCompletion:
        # The SDK's post() sends our already-JSON-shaped body as is; chat.completions.create()
        # would first walk it against its TypedDicts, which profiled at ~10 ms per turn.
        from openai.types.chat import ChatCompletion

        if self.client is None:
            self.client = self.endpoint.connect()
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.tools:
            body["tools"] = self.tools
        return await self.client.post("/chat/completions", body=body, cast_to=ChatCompletion)

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
