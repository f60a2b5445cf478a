"""Python client for a running gateway: async and sync, typed errors.

`AsyncSessionGateClient` (on `httpx.AsyncClient`) and `SessionGateClient` (on
`httpx.Client`, no event loop of its own, so it also works in a thread whose
event loop is running, e.g. a notebook) share every method: each is written
once, in `_ClientApi`, as the requests it makes; the one client awaits them,
the other blocks on them.

Errors arrive as the same exception classes the gateway raises (see `errors.py`).
`must_exist=True` is a caller-side guard for gateways you do not control: it
checks the session resolves before sending, and asks the gateway not to create.
A send that outlives its wait answers ``{"status": "timeout", "runId", ...}``
(the message is stored and its run goes on); ``raise_on_timeout=True`` raises
`RunTimeoutError` with ``runId`` and ``sessionKey`` in its details instead.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from sessiongate.errors import (
    GatewayUnreachableError,
    RunTimeoutError,
    SessionGateError,
    error_from_wire,
)

__all__ = ["AsyncSessionGateClient", "SessionGateClient"]

DEFAULT_URL = "http://127.0.0.1:18789"


@dataclass(frozen=True, slots=True)
class _Call:
    """One HTTP request to the gateway, built once for both clients."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        return {"params": self.params, "json": self.json, "headers": self.headers}


def _result(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise SessionGateError(
            f"gateway answered {response.status_code} with a non-JSON body",
            details={"status": response.status_code, "body": response.text[:200]},
        ) from None
    if not isinstance(body, dict) or body.get("ok") is not True:
        raise error_from_wire(body if isinstance(body, dict) else {})
    result: dict[str, Any] = body["result"]
    return result


def _unreachable(url: str, exc: httpx.TransportError) -> GatewayUnreachableError:
    return GatewayUnreachableError(
        f"no gateway answers at {url}: {exc}",
        details={"url": url, "hint": "start one with `sessiongate serve`"},
    )


def _quote(key: str) -> str:
    return urllib.parse.quote(key, safe=":")


class _Requests:
    """Builds each request of the API (shared by the async and the sync client)."""

    def __init__(self, url: str, token: str | None, session_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session_key = session_key

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def _get(self, path: str, params: dict[str, Any] | None = None) -> _Call:
        own = {"x-session-key": self.session_key} if self.session_key else {}
        return _Call("GET", path, params=params, headers=own)

    def invoke(self, tool: str, args: dict[str, Any]) -> _Call:
        body: dict[str, Any] = {"tool": tool, "args": args}
        if self.session_key:
            body["sessionKey"] = self.session_key
        return _Call("POST", "/tools/invoke", json=body)

    def resolve(self, session_key: str) -> _Call:
        return self._get(f"/v1/sessions/{_quote(session_key)}")

    def status(self) -> _Call:
        return _Call("GET", "/v1/status")

    def send(
        self, session_key: str, message: str, timeout_seconds: float, create_on_miss: bool | None
    ) -> _Call:
        args: dict[str, Any] = {
            "sessionKey": session_key,
            "message": message,
            "timeoutSeconds": timeout_seconds,
        }
        if create_on_miss is not None:
            args["createOnMiss"] = create_on_miss
        return self.invoke("sessions_send", args)

    def spawn(
        self, agent_id: str, task: str, label: str | None, parent_session_key: str | None
    ) -> _Call:
        args: dict[str, Any] = {"agentId": agent_id, "task": task}
        if label is not None:
            args["label"] = label
        if parent_session_key is not None:
            args["parentSessionKey"] = parent_session_key
        return self.invoke("sessions_spawn", args)

    def list_sessions(
        self, agent_id: str | None, kind: str | None, limit: int, cursor: str | None
    ) -> _Call:
        params = {"agentId": agent_id, "kind": kind, "limit": limit, "cursor": cursor}
        return self._get("/v1/sessions", {k: v for k, v in params.items() if v is not None})

    def lifecycle(self, method: str, session_key: str, verb: str, body: dict[str, Any]) -> _Call:
        """DELETE /v1/sessions/{key}, or POST /v1/sessions/{key}/{verb} (reset, archive, …)."""
        own = {"x-session-key": self.session_key} if self.session_key else {}
        path = f"/v1/sessions/{_quote(session_key)}" + (f"/{verb}" if verb else "")
        return _Call(method, path, json={k: v for k, v in body.items() if v is not None},
                     headers=own)  # fmt: skip

    def history(
        self, session_key: str, limit: int, before: int | None, follow_alias: bool = True
    ) -> _Call:
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["before"] = before
        if not follow_alias:
            query["followAlias"] = "false"
        return self._get(f"/v1/sessions/{_quote(session_key)}/messages", query)


def _sent(result: dict[str, Any], raise_on_timeout: bool) -> dict[str, Any]:
    if raise_on_timeout and result.get("status") == "timeout":
        raise RunTimeoutError(
            f"no reply within the wait; run {result.get('runId')} goes on (message stored)",
            details={"runId": result.get("runId"), "sessionKey": result.get("sessionKey")},
        )
    return result


# A method that needs more than one request: it yields each request, is sent each result
# back, and returns the method's result. Either client drives it with its own I/O.
_Flow = Generator[_Call, dict[str, Any], dict[str, Any]]
_R = TypeVar("_R")


class _ClientApi(Generic[_R]):
    """Every method of the API, once; `_run` sends the requests (awaiting or blocking), so
    `_R` is a coroutine of the result in the async client and the result in the sync one."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        session_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._requests = _Requests(url, token, session_key)
        self.url = self._requests.url
        self.session_key = session_key
        self._connect(self._requests.headers(), timeout)

    def _connect(self, headers: dict[str, str], timeout: float) -> None:
        raise NotImplementedError

    def _run(self, work: _Call | _Flow) -> _R:
        raise NotImplementedError

    def status(self) -> _R:
        """What the gateway runs: version, pid, store, session count, createOnMiss per agent."""
        return self._run(self._requests.status())

    def invoke(self, tool: str, args: dict[str, Any]) -> _R:
        """Invoke a tool by name (POST /tools/invoke)."""
        return self._run(self._requests.invoke(tool, args))

    def resolve(self, session_key: str) -> _R:
        """The session a key resolves to; SessionNotFoundError if none (never creates)."""
        return self._run(self._requests.resolve(session_key))

    def send(
        self,
        session_key: str,
        message: str,
        *,
        timeout_seconds: float = 30,
        create_on_miss: bool | None = None,
        must_exist: bool = False,
        raise_on_timeout: bool = False,
    ) -> _R:
        """sessions_send; with `must_exist`, refuse (SessionNotFoundError) unknown keys."""
        return self._run(
            self._send(session_key, message, timeout_seconds, create_on_miss, must_exist,
                       raise_on_timeout)
        )  # fmt: skip

    def _send(
        self, key: str, message: str, timeout_seconds: float, create_on_miss: bool | None,
        must_exist: bool, raise_on_timeout: bool,
    ) -> _Flow:  # fmt: skip
        if must_exist:
            yield self._requests.resolve(key)
            create_on_miss = False
        result = yield self._requests.send(key, message, timeout_seconds, create_on_miss)
        return _sent(result, raise_on_timeout)

    def spawn(
        self,
        agent_id: str,
        task: str,
        *,
        label: str | None = None,
        parent_session_key: str | None = None,
    ) -> _R:
        """sessions_spawn: a fresh sub-agent session running `task`; returns at once."""
        return self._run(self._requests.spawn(agent_id, task, label, parent_session_key))

    def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> _R:
        """A page of sessions, newest first, with `nextCursor`."""
        return self._run(self._requests.list_sessions(agent_id, kind, limit, cursor))

    def history(
        self,
        session_key: str,
        *,
        limit: int = 50,
        before: int | None = None,
        follow_alias: bool = True,
    ) -> _R:
        """A session's transcript (oldest first, by time) up to `limit` messages before
        `before`; `follow_alias=False` reads the key's own (an archived phantom's)."""
        return self._run(self._requests.history(session_key, limit, before, follow_alias))

    def delete(self, session_key: str, *, force: bool = False, reason: str | None = None) -> _R:
        """Erase a session (a tombstone remains; a main needs `force`); see README."""
        body = {"force": force or None, "reason": reason}
        return self._run(self._requests.lifecycle("DELETE", session_key, "", body))

    def reset(self, session_key: str, *, delete_old: bool = False, reason: str | None = None) -> _R:
        """A fresh transcript under the same key; the old one archived (or deleted)."""
        body = {"oldTranscript": "delete" if delete_old else None, "reason": reason}
        return self._run(self._requests.lifecycle("POST", session_key, "reset", body))

    def archive(self, session_key: str, *, reason: str | None = None) -> _R:
        """Archive a session (kept; it still takes messages)."""
        return self._lifecycle_verb("archive", session_key, reason)

    def unarchive(self, session_key: str, *, reason: str | None = None) -> _R:
        """Make an archived session active again."""
        return self._lifecycle_verb("unarchive", session_key, reason)

    def _lifecycle_verb(self, verb: str, session_key: str, reason: str | None) -> _R:
        return self._run(self._requests.lifecycle("POST", session_key, verb, {"reason": reason}))


def _first(work: _Call | _Flow) -> tuple[_Call | dict[str, Any], _Flow | None]:
    return (work, None) if isinstance(work, _Call) else (next(work), work)


def _next(flow: _Flow | None, result: dict[str, Any]) -> _Call | dict[str, Any]:
    """The flow's next request, or its result once it has none."""
    if flow is None:
        return result
    try:
        return flow.send(result)
    except StopIteration as done:
        outcome: dict[str, Any] = done.value
        return outcome


class AsyncSessionGateClient(_ClientApi[Coroutine[Any, Any, dict[str, Any]]]):
    """Talks to a gateway over HTTP; `session_key` is the caller's own session, if any."""

    def _connect(self, headers: dict[str, str], timeout: float) -> None:
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> AsyncSessionGateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, work: _Call | _Flow) -> dict[str, Any]:
        step, flow = _first(work)
        while isinstance(step, _Call):
            step = _next(flow, await self._do(step))
        return step

    async def _do(self, call: _Call) -> dict[str, Any]:
        try:
            response = await self._http.request(call.method, call.path, **call.options())
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from None
        return _result(response)


class SessionGateClient(_ClientApi[dict[str, Any]]):
    """The blocking twin of `AsyncSessionGateClient` on `httpx.Client`: same methods, same
    signatures, same errors; no event loop of its own."""

    def _connect(self, headers: dict[str, str], timeout: float) -> None:
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> SessionGateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, work: _Call | _Flow) -> dict[str, Any]:
        step, flow = _first(work)
        while isinstance(step, _Call):
            step = _next(flow, self._do(step))
        return step

    def _do(self, call: _Call) -> dict[str, Any]:
        try:
            response = self._http.request(call.method, call.path, **call.options())
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from None
        return _result(response)
