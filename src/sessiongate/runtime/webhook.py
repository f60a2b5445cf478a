"""The webhook runtime: POST the message to a URL; the response body is the reply."""

from __future__ import annotations

from typing import Any

import httpx

from sessiongate.config import WebhookConfig
from sessiongate.runtime.base import Emit, Turn

__all__ = ["WebhookError", "WebhookRuntime"]


class WebhookError(Exception):
    """The webhook answered with an error or something that is not a reply."""


class WebhookRuntime:
    name = "webhook"
    uses_history = False

    def __init__(self, config: WebhookConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client

    async def run(self, turn: Turn, emit: Emit) -> str:
        payload = {
            "sessionKey": turn.session.key,
            "agentId": turn.session.agent_id,
            "runId": turn.run_id,
            "message": turn.message,
        }
        response = await self.client.post(
            self.config.url,
            json=payload,
            headers=self.config.headers,
            timeout=self.config.timeout_seconds,
        )
        if response.status_code >= 400:
            raise WebhookError(f"webhook {self.config.url} answered {response.status_code}")
        reply = _reply_of(response)
        await emit(reply)
        return reply

    async def close(self) -> None:
        return None  # the HTTP client is the gateway's, closed by it


def _reply_of(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return response.text
    body: Any = response.json()
    if isinstance(body, dict) and isinstance(body.get("reply"), str):
        return str(body["reply"])
    raise WebhookError('webhook JSON must be {"reply": "<text>"}')
