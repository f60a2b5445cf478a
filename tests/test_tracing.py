"""OpenTelemetry traces, recorded by the SDK's in-memory exporter from the real server:
request → resolution → store → run, over HTTP, WebSocket and MCP; OTLP export when an
endpoint is set; nothing when it is not."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sessiongate import tracing
from sessiongate.config import SessionGateConfig
from sessiongate.mcp_bridge import gateway_client
from tests.helpers import (
    INCIDENT_KEY,
    client_for,
    connected,
    detach,
    free_port,
    invoke,
    openclaw_client,
    openclaw_request,
    sessiongate,
)
from tests.helpers import ws_request as request

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span the gateway ends, kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_tracer_provider(None)


def in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


def named(found: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name]


def parent_of(found: list[ReadableSpan], child: ReadableSpan) -> ReadableSpan | None:
    parent = child.parent
    return next((s for s in found if parent and s.context.span_id == parent.span_id), None)


async def wait_for(exporter: InMemorySpanExporter, name: str, trace_id: int) -> ReadableSpan:
    """The span `name` of the trace, once it ended (a run may end after the response)."""
    for _ in range(500):
        found = named(in_trace(exporter, trace_id), name)
        if found:
            return found[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {name} span in trace {trace_id:032x}")


async def test_an_http_send_is_one_trace_request_resolution_store_and_run(
    serve: Serve, config_factory: ConfigFactory, spans: InMemorySpanExporter
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        sent = await http.post(
            "/tools/invoke",
            json={"tool": "sessions_send", "args": {"sessionKey": "Main", "message": "hi"}},
            headers={"traceparent": TRACEPARENT},
        )
        result = sent.json()["result"]
        trace_id = int(TRACE_ID, 16)  # the caller's trace goes on
        run = await wait_for(spans, "sessiongate.run", trace_id)
        found = in_trace(spans, trace_id)
        [server] = [s for s in found if s.kind is SpanKind.SERVER]
        assert server.attributes is not None and server.attributes["http.method"] == "POST"
        [resolve] = named(found, "sessiongate.resolve")
        assert parent_of(found, resolve) is server
        assert dict(resolve.attributes or {}) == {
            "sessiongate.requested_key": "Main",
            "sessiongate.canonical_key": "agent:atlas:main",
            "sessiongate.decision": "hit",
            "sessiongate.caller": "operator",
            "sessiongate.entry_point": "http",
            "sessiongate.intent": "address",
        }
        stored = named(found, "store.accept_message")
        assert stored and stored[0].attributes == {"sessiongate.session_key": "agent:atlas:main"}
        assert parent_of(found, run) is server
        assert [link.context.span_id for link in run.links] == [server.context.span_id]
        assert run.attributes == {
            "sessiongate.run_id": result["runId"],
            "sessiongate.agent": "atlas",
            "sessiongate.session_key": "agent:atlas:main",
            "sessiongate.status": "ok",
        }


async def test_a_refusal_span_names_the_decision_and_the_rule(
    serve: Serve, config_factory: ConfigFactory, spans: InMemorySpanExporter
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        args = {"sessionKey": INCIDENT_KEY, "message": "hi", "createOnMiss": False}
        refused = await invoke(http, "sessions_send", args, "agent:peggy:main")
        assert refused.status_code == 404
        resolves = named(spans.get_finished_spans(), "sessiongate.resolve")
        refusal = next(
            s for s in resolves if s.attributes["sessiongate.requested_key"] == INCIDENT_KEY
        )  # type: ignore[index]
        assert refusal.attributes is not None
        assert refusal.attributes["sessiongate.decision"] == "rejected"
        assert refusal.attributes["sessiongate.rule"] == "call createOnMiss=false"
        assert refusal.attributes["sessiongate.caller"] == "agent:peggy:main"
        assert refusal.attributes["sessiongate.canonical_key"] == INCIDENT_KEY
        assert named(spans.get_finished_spans(), "sessiongate.run") == []


async def test_each_websocket_request_and_each_mcp_call_is_its_own_trace(
    serve: Serve, config_factory: ConfigFactory, spans: InMemorySpanExporter
) -> None:
    async with serve(config_factory()) as gw:
        ws = await connected(gw)
        first = await request(ws, 1, "agent", sessionKey="main", message="one")
        second = await request(ws, 2, "agent", sessionKey="main", message="two")
        await ws.close()
        frames = named(spans.get_finished_spans(), "ws agent")
        assert len(frames) == 2 and frames[0].context.trace_id != frames[1].context.trace_id
        for frame, answer in zip(frames, (first, second), strict=True):
            trace_id = frame.context.trace_id
            run = await wait_for(spans, "sessiongate.run", trace_id)
            assert run.attributes is not None
            assert run.attributes["sessiongate.run_id"] == answer["payload"]["runId"]
            assert named(in_trace(spans, trace_id), "sessiongate.resolve")
            assert frame.links  # to the connection's span
        async with gateway_client(gw.url, gw.token, None) as mcp:
            called = await mcp.call_tool("sessions_send", {"sessionKey": "main", "message": "3"})
        assert called.is_error is not True
        assert called.structured_content is not None
        runs = named(spans.get_finished_spans(), "sessiongate.run")
        [mcp_run] = [
            r
            for r in runs
            if r.attributes
            and r.attributes["sessiongate.run_id"] == called.structured_content["runId"]
        ]
        mcp_trace = in_trace(spans, mcp_run.context.trace_id)
        assert [s for s in mcp_trace if s.kind is SpanKind.SERVER]  # the POST /mcp request
        assert named(mcp_trace, "sessiongate.resolve")


async def test_an_openclaw_request_is_a_trace_with_its_resolution(
    serve: Serve, config_factory: ConfigFactory, spans: InMemorySpanExporter
) -> None:
    async with serve(config_factory()) as gw:
        async with await openclaw_client(gw, ["operator.read"]) as ws:
            answer = await openclaw_request(ws, "h", "chat.history", sessionKey="main", limit=2)
        assert answer["ok"] is True
        [frame] = named(spans.get_finished_spans(), "ws chat.history")
        found = in_trace(spans, frame.context.trace_id)
        [resolve] = named(found, "sessiongate.resolve")
        assert resolve.attributes is not None
        assert resolve.attributes["sessiongate.canonical_key"] == "agent:atlas:main"
        assert resolve.attributes["sessiongate.intent"] == "read"


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Collector.received.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


async def test_nothing_is_traced_without_an_endpoint(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        assert not tracing.enabled()
        assert type(gw.gateway.store).__name__ != "_TracedStore"  # no wrapper, no cost
        sent = await http.post(
            "/tools/invoke",
            json={"tool": "sessions_send", "args": {"sessionKey": "main", "message": "hi"}},
            headers={"traceparent": TRACEPARENT},
        )
        assert sent.status_code == 200


def test_a_served_gateway_exports_over_otlp_and_logs_the_trace_id(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, collector_port = free_port(), free_port()
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", collector_port), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector_port}")
    try:
        detach(state, "--port", str(port), "--log-format", "json")
        body = {"tool": "sessions_send", "args": {"sessionKey": "main", "message": "hi"}}
        token = (state / "gateway.token").read_text().strip()
        headers = {"authorization": f"Bearer {token}", "traceparent": TRACEPARENT}
        sent = httpx.post(f"http://127.0.0.1:{port}/tools/invoke", json=body, headers=headers)
        assert sent.status_code == 200
        assert sessiongate("stop", "--port", str(port), state=state).returncode == 0
    finally:
        collector.shutdown()
    assert "/v1/traces" in _Collector.received  # flushed on the way out at the latest
    lines = [json.loads(line) for line in (state / "gateway.log").read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    [access] = [line for line in lines if line.get("path") == "/tools/invoke"]
    assert access["trace_id"] == TRACE_ID
