"""What every tool shares: argument models, the call context, the registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from sessiongate.errors import ForbiddenError, InvalidRequestError, plain_message
from sessiongate.outcomes import Outcome
from sessiongate.resolver import Caller, Resolver
from sessiongate.runtime.runs import RunManager
from sessiongate.store.base import SessionPage, SessionStore

__all__ = ["ToolArgs", "ToolContext", "ToolSpec", "validate_args"]

A = TypeVar("A", bound="ToolArgs")
ListSessions = Callable[..., Awaitable[SessionPage]]
"""The gateway's listing for a caller: (caller, *, agent_id, kind, limit, cursor) → page."""


class ToolArgs(BaseModel):
    """Arguments of a tool: camelCase on the wire, strict types, unknown keys refused,
    numbers finite (a surface that parses JSON itself may hand over ``inf``)."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        strict=True,
        allow_inf_nan=False,
    )


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool works with: every session reference goes through `resolver` (with its
    intent); `store` is for reads of sessions already resolved; `runs` accepts messages;
    `list_sessions` pages through what the caller may see (sealed cursors)."""

    resolver: Resolver
    store: SessionStore
    runs: RunManager
    list_sessions: ListSessions
    caller: Caller


@dataclass(frozen=True, slots=True)
class ToolSpec(Generic[A]):
    """One tool: its name, description (shown to LLMs), argument model and typed operation."""

    name: str
    description: str
    args_model: type[A]
    run: Callable[[ToolContext, A], Awaitable[Outcome]]
    addresses_session: bool

    def json_schema(self) -> dict[str, Any]:
        """The argument schema as offered to an LLM."""
        return self.args_model.model_json_schema(by_alias=True)


def validate_args(model: type[A], raw: Any, what: str) -> A:
    """Validate wire arguments; InvalidRequestError lists every problem by argument name."""
    if not isinstance(raw, dict):
        raise InvalidRequestError(
            f"{what}: arguments must be a JSON object, got {type(raw).__name__}",
            details={"tool": what, "problems": ["(args): expected an object"]},
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(args)'}: {plain_message(e['msg'])}"
            for e in exc.errors()
        ]
        raise InvalidRequestError(
            f"{what}: invalid arguments: " + "; ".join(problems),
            details={"tool": what, "problems": problems},
        ) from None


def forbidden_tool(name: str, allowed: list[str]) -> ForbiddenError:
    """The error for a tool the gateway does not let this surface invoke."""
    name = str(name)  # a ToolName's own repr names the enum, not the tool
    return ForbiddenError(
        f"tool {name!r} is not allowed here (gateway.tools.allow: {', '.join(allowed) or 'none'})",
        details={"tool": name, "allowed": allowed},
    )
