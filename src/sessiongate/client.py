"""Python client for a running gateway: async core, thin sync wrapper, typed errors.

Errors arrive as the same exception classes the gateway raises (see `errors.py`).
`must_exist=True` is a caller-side guard for gateways you do not control: it
checks the session resolves before sending, and asks the gateway not to create.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any, TypeVar

import httpx

from sessiongate.errors import GatewayUnreachableError, SessionGateError, error_from_wire

__all__ = ["AsyncSessionGateClient", "SessionGateClient"]

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:18789"


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


class AsyncSessionGateClient:
    """Talks to a gateway over HTTP; `session_key` is the caller's own session, if any."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        session_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.session_key = session_key
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> AsyncSessionGateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if self.session_key:
            kwargs.setdefault("headers", {})["x-session-key"] = self.session_key
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise GatewayUnreachableError(
                f"no gateway answers at {self.url}: {exc}",
                details={"url": self.url, "hint": "start one with `sessiongate serve`"},
            ) from None
        return _result(response)

    async def status(self) -> dict[str, Any]:
        """What the gateway runs: version, pid, store, session count, createOnMiss per agent."""
        return await self._request("GET", "/v1/status")

    async def invoke(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """Invoke a tool by name (POST /tools/invoke)."""
        body: dict[str, Any] = {"tool": tool, "args": args}
        if self.session_key:
            body["sessionKey"] = self.session_key
        return await self._request("POST", "/tools/invoke", json=body)

    async def resolve(self, session_key: str) -> dict[str, Any]:
        """The session a key resolves to; SessionNotFoundError if none (never creates)."""
        return await self._request("GET", f"/v1/sessions/{_quote(session_key)}")

    async def send(
        self,
        session_key: str,
        message: str,
        *,
        timeout_seconds: float = 30,
        create_on_miss: bool | None = None,
        must_exist: bool = False,
    ) -> dict[str, Any]:
        """sessions_send; with `must_exist`, refuse (SessionNotFoundError) unknown keys."""
        if must_exist:
            await self.resolve(session_key)
            create_on_miss = False
        args: dict[str, Any] = {
            "sessionKey": session_key,
            "message": message,
            "timeoutSeconds": timeout_seconds,
        }
        if create_on_miss is not None:
            args["createOnMiss"] = create_on_miss
        return await self.invoke("sessions_send", args)

    async def spawn(
        self,
        agent_id: str,
        task: str,
        *,
        label: str | None = None,
        parent_session_key: str | None = None,
    ) -> dict[str, Any]:
        """sessions_spawn: a fresh sub-agent session running `task`; returns at once."""
        args: dict[str, Any] = {"agentId": agent_id, "task": task}
        if label is not None:
            args["label"] = label
        if parent_session_key is not None:
            args["parentSessionKey"] = parent_session_key
        return await self.invoke("sessions_spawn", args)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of sessions, newest first, with `nextCursor`."""
        params = {"agentId": agent_id, "kind": kind, "limit": limit, "cursor": cursor}
        query = {k: v for k, v in params.items() if v is not None}
        return await self._request("GET", "/v1/sessions", params=query)

    async def history(
        self, session_key: str, *, limit: int = 50, before: int | None = None
    ) -> dict[str, Any]:
        """A session's transcript (oldest first) up to `limit` messages before `before`."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["before"] = before
        path = f"/v1/sessions/{_quote(session_key)}/messages"
        return await self._request("GET", path, params=query)


def _quote(key: str) -> str:
    return urllib.parse.quote(key, safe=":")


class SessionGateClient:
    """The blocking twin of `AsyncSessionGateClient` (same methods, same errors)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        session_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = AsyncSessionGateClient(url, token, session_key=session_key, timeout=timeout)

    def __enter__(self) -> SessionGateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, awaitable: Any) -> Any:
        return self._loop.run_until_complete(awaitable)

    def close(self) -> None:
        self._run(self._client.aclose())
        self._loop.close()

    def status(self) -> dict[str, Any]:
        return dict(self._run(self._client.status()))

    def invoke(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        return dict(self._run(self._client.invoke(tool, args)))

    def resolve(self, session_key: str) -> dict[str, Any]:
        return dict(self._run(self._client.resolve(session_key)))

    def send(self, session_key: str, message: str, **options: Any) -> dict[str, Any]:
        return dict(self._run(self._client.send(session_key, message, **options)))

    def spawn(self, agent_id: str, task: str, **options: Any) -> dict[str, Any]:
        return dict(self._run(self._client.spawn(agent_id, task, **options)))

    def list_sessions(self, **options: Any) -> dict[str, Any]:
        return dict(self._run(self._client.list_sessions(**options)))

    def history(self, session_key: str, **options: Any) -> dict[str, Any]:
        return dict(self._run(self._client.history(session_key, **options)))
