"""OpenTelemetry traces (the ``otel`` extra): request → resolution → store → run.

Off unless an OTLP endpoint is configured (``$OTEL_EXPORTER_OTLP_ENDPOINT`` or
``tracing.otlpEndpoint``) or an embedder hands in a tracer provider
(`use_tracer_provider`, e.g. the SDK's in-memory exporter in tests). Off, nothing of
OpenTelemetry is imported and every helper here is one ``if`` — no spans, no cost.

On, each HTTP request (the API, ``/mcp``, the page, OpenClaw's HTTP) is one trace
(ASGI instrumentation, W3C ``traceparent`` honoured); each WebSocket request frame
(``/ws`` and OpenClaw's ``/``) is a trace of its own, linked to its connection's span.
Inside: ``sessiongate.resolve`` (requested and canonical key, decision, rule, caller),
``store.<call>`` for every store call, and ``sessiongate.run`` (run id, agent, status),
a child of the request that started it and linked to it, even when it ends later.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from sessiongate.extras import require_extra

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from sessiongate.config import SessionGateConfig

__all__ = [
    "capture",
    "configure_tracing",
    "current_trace_id",
    "enabled",
    "request_span",
    "set_attributes",
    "shutdown_tracing",
    "span",
    "traced_store",
    "tracer_provider",
    "use_tracer_provider",
]

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _tracer is not None


def tracer_provider() -> TracerProvider | None:
    """The provider spans go to (None when tracing is off)."""
    return _provider


def use_tracer_provider(provider: Any | None) -> None:
    """Record spans with `provider` (None: stop recording)."""
    global _tracer, _provider
    if provider is None:
        _tracer = _provider = None
        return
    _provider = provider
    _tracer = provider.get_tracer("sessiongate")


def configure_tracing(config: SessionGateConfig) -> bool:
    """Export spans over OTLP/HTTP when an endpoint is configured; True if it is on."""
    if enabled():  # an embedder's provider (tests) wins
        return True
    endpoint = os.environ.get(ENDPOINT_ENV) or config.tracing.otlp_endpoint
    if not endpoint:
        return False
    purpose = f"traces to {endpoint}"
    require_extra("opentelemetry.sdk.trace", "otel", purpose)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": config.tracing.service_name})
    )
    # the SDK reads $OTEL_EXPORTER_OTLP_ENDPOINT itself and appends /v1/traces
    exporter = OTLPSpanExporter() if os.environ.get(ENDPOINT_ENV) else OTLPSpanExporter(endpoint)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    use_tracer_provider(provider)
    return True


def shutdown_tracing() -> None:
    """Flush what is queued for export (the gateway's close)."""
    if _provider is not None and hasattr(_provider, "force_flush"):
        _provider.force_flush()


@contextlib.contextmanager
def span(
    name: str,
    attributes: dict[str, Any] | None = None,
    *,
    context: Context | None = None,
    links: list[Any] | None = None,
) -> Iterator[Span | None]:
    """A span around the block (None, and nothing recorded, when tracing is off)."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
        name, context=context, links=links, attributes=_clean(attributes)
    ) as current:
        yield current


@contextlib.contextmanager
def request_span(name: str, attributes: dict[str, Any] | None = None) -> Iterator[Span | None]:
    """A new trace for one request on a long connection (a WebSocket frame), linked to
    the connection's span."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.context import Context

    connection = trace.get_current_span().get_span_context()
    links = [trace.Link(connection)] if connection.is_valid else None
    with span(name, attributes, context=Context(), links=links) as current:
        yield current


def set_attributes(current: Span | None, **attributes: Any) -> None:
    """Set `attributes` (``a_b`` → ``sessiongate.a_b``) on `current`, when there is one."""
    if current is not None:
        current.set_attributes(_clean({f"sessiongate.{k}": v for k, v in attributes.items()}) or {})


def capture() -> Any:
    """The current trace context, to parent work that runs later (a run); None when off."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def run_links(captured: Any) -> list[Any] | None:
    """A link to the span current when `captured` was taken."""
    if captured is None:
        return None
    from opentelemetry import trace

    origin = trace.get_current_span(captured).get_span_context()
    return [trace.Link(origin)] if origin.is_valid else None


def current_trace_id() -> str | None:
    """The current trace id in hex (for log lines); None when off or outside a span."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _clean(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenTelemetry takes str, bool, int, float (and lists of them); None is left out."""
    if attributes is None:
        return None
    return {k: v if isinstance(v, str | bool | int | float) else str(v)
            for k, v in attributes.items() if v is not None}  # fmt: skip


class _TracedStore:
    """The store with a ``store.<call>`` span around each of its coroutine calls."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name.startswith("_") or not _is_coroutine_function(attribute):
            return attribute
        return _traced_call(f"store.{name}", attribute)


def _is_coroutine_function(value: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(value)


def _traced_call(name: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def traced(*args: Any, **kwargs: Any) -> Any:
        key = args[0] if args and isinstance(args[0], str) else kwargs.get("key")
        with span(name, {"sessiongate.session_key": key}):
            return await call(*args, **kwargs)

    return traced


def traced_store(store: Any) -> Any:
    """`store` itself when tracing is off; else the store with a span per call."""
    return _TracedStore(store) if enabled() else store
