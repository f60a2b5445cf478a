"""Connection budgets: what one client may hold of the gateway, before or after it authenticates.

uvicorn provides the keep-alive idle timeout and the WebSocket keep-alive pings
(configured in `app.py`). What it lacks is implemented here, once:

- a deadline for receiving a request's headers (from the connection's start or
  the end of the previous response) and one for its body, so slowloris
  connections are closed (``408``);
- a cap on open connections, in total and per client address, checked as a
  connection is accepted: at a cap the oldest connection that is neither
  answering a request nor authenticated is closed to make room (then the oldest
  idle authenticated HTTP one); when none is, the new client gets ``503`` with a
  JSON error and the connection is closed, before any byte of its request is read;
- per WebSocket connection (`WsBudget`): requests in flight (beyond:
  ``TOO_MANY_REQUESTS``, no work done) and bytes queued for a slow reader
  (beyond: close ``1013 SEND_QUEUE_FULL``);
- optionally, a request rate per token over HTTP and WebSocket together
  (`RateLimiter`, a token bucket; beyond: ``TOO_MANY_REQUESTS``).

The total cap never exceeds the process's file-descriptor limit minus a
reserve, so the store, the audit log and a legitimate client always find a
descriptor.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from sessiongate.config import LimitsConfig
from sessiongate.errors import (
    RequestTimeoutError,
    SessionGateError,
    TooManyConnectionsError,
    TooManyRequestsError,
)
from sessiongate.metrics import GatewayMetrics

__all__ = [
    "CLOSE_CONNECT_TIMEOUT",
    "CLOSE_SEND_QUEUE_FULL",
    "TAKE_TEXT",
    "WRITE_NOW",
    "ConnectionGuard",
    "OpenConnection",
    "RateLimiter",
    "WsBudget",
    "effective_max_connections",
    "guarded_protocols",
]

log = structlog.get_logger("sessiongate.limits")

FD_RESERVE = 64  # descriptors kept for the store, the audit log, outbound HTTP and logs
MAX_HEADER_BYTES = 65_536  # request line plus headers; nothing legitimate comes close
CLOSE_CONNECT_TIMEOUT = (1008, "CONNECT_TIMEOUT")
CLOSE_SEND_QUEUE_FULL = (1013, "SEND_QUEUE_FULL")
WRITE_NOW = "sessiongate.write_now"  # the scope extension: frame a text message at once
TAKE_TEXT = "sessiongate.take_text"  # the scope extension: text messages handed over directly
SLOW_READER_CLOSE_GRACE_SECONDS = 10.0  # as uvicorn's close timeout


def effective_max_connections(configured: int) -> int:
    """`configured`, lowered to what the file-descriptor limit can hold with a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - FD_RESERVE))


@dataclass(eq=False, slots=True)
class OpenConnection:
    """One open connection as the guard sees it, oldest first in its registry."""

    client: str  # the address, for the per-client cap
    peer: Any  # (host, port): the ASGI scope's ``client``, to find it from a request
    close: Callable[[], None]  # ends it at once (a shed connection)
    busy: bool = False  # a request of it is being answered
    authenticated: bool = False  # it presented the token (or a signed-in page's cookie)
    websocket: bool = False
    released: bool = False

    def sheddable(self, authenticated: bool) -> bool:
        """Whether it may be closed to admit another: not answering a request, and (when
        `authenticated` is False) never authenticated; an authenticated WebSocket never."""
        if self.busy or self.authenticated != authenticated:
            return False
        return not (authenticated and self.websocket)


class ConnectionGuard:
    """Counts open connections, in total and per client address, for one server.

    At a cap, the oldest connection that is not answering a request and never
    authenticated (a slowloris, a WebSocket that never sent ``connect``) is closed
    to admit the new one — then the oldest idle authenticated HTTP connection;
    only when every connection is busy or an authenticated WebSocket is the new one
    refused. So unauthenticated clients cannot keep an authenticated one out.
    """

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self.max_total = effective_max_connections(limits.max_connections)
        if self.max_total < limits.max_connections:
            log.warning(
                "gateway.limits.maxConnections lowered to fit the file-descriptor limit",
                configured=limits.max_connections,
                effective=self.max_total,
            )
        self.total = 0
        self.by_client: Counter[str] = Counter()
        self.metrics: GatewayMetrics | None = None  # set once the gateway is open
        self._open: dict[int, OpenConnection] = {}  # by id, oldest first
        self._by_peer: dict[Any, OpenConnection] = {}
        self.handoff: OpenConnection | None = None  # an HTTP connection becoming a WebSocket

    def shed(self, reason: str) -> None:
        """Count a connection refused or closed over a budget."""
        if self.metrics is not None:
            self.metrics.shed(reason)

    def admit(self, connection: OpenConnection) -> str | None:
        """Count a new connection in (shedding an older one if a cap is reached); or the
        reason it is refused (nothing is counted then)."""
        client = connection.client
        per_client = self.limits.max_connections_per_client
        if self.by_client[client] >= per_client and not self._shed_oldest(client):
            self.shed("max_connections_per_client")
            return f"this client address holds its maximum of {per_client} connections"
        if self.total >= self.max_total and not self._shed_oldest(None):
            self.shed("max_connections")
            return f"the gateway holds its maximum of {self.max_total} connections"
        self.total += 1
        self.by_client[client] += 1
        self._open[id(connection)] = connection
        self._by_peer[connection.peer] = connection
        return None

    def _shed_oldest(self, client: str | None) -> bool:
        """Close the oldest sheddable connection (of `client`, or of anyone)."""
        for authenticated in (False, True):
            for connection in self._open.values():
                if (client is None or connection.client == client) and connection.sheddable(
                    authenticated
                ):
                    self.shed("shed_unauthenticated" if not authenticated else "shed_idle")
                    self.release(connection)
                    connection.close()
                    return True
        return False

    def release(self, connection: OpenConnection) -> None:
        """Count a connection out (once, however often it is called)."""
        if connection.released:
            return
        connection.released = True
        self.total -= 1
        self.by_client[connection.client] -= 1
        if self.by_client[connection.client] <= 0:
            del self.by_client[connection.client]
        self._open.pop(id(connection), None)
        if self._by_peer.get(connection.peer) is connection:
            del self._by_peer[connection.peer]

    def authenticated(self, peer: Any) -> None:
        """The connection of `peer` (an ASGI scope's ``client``) presented valid credentials."""
        connection = self._by_peer.get(tuple(peer) if peer else None)
        if connection is not None:
            connection.authenticated = True


def _plain_response(phrase: str, error: SessionGateError) -> bytes:
    body = json.dumps(error.to_wire()).encode()
    head = (
        f"HTTP/1.1 {error.http_status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with admission, header/body deadlines and a header cap."""

    guard: ClassVar[ConnectionGuard]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        host = self.client[0] if self.client else "unknown"
        self._entry = OpenConnection(host, self.client, self._shed_now)
        refusal = self.guard.admit(self._entry)
        self._admitted = refusal is None
        if refusal is not None:
            response = _plain_response("Service Unavailable", TooManyConnectionsError(refusal))
            transport.write(response)
            transport.close()
            return
        self._arm(self.guard.limits.header_timeout_seconds)

    def _shed_now(self) -> None:
        """Closed to admit another connection: a 503 if a request is half-received."""
        self._admitted = False
        self._disarm()
        if self.transport.is_closing():
            return
        if self._header_bytes and (self.cycle is None or self.cycle.response_complete):
            message = "shed to admit another connection: the gateway is at its connection cap"
            error = TooManyConnectionsError(message)
            self.transport.write(_plain_response("Service Unavailable", error))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self._admitted = False
            self.guard.release(self._entry)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            super().data_received(data)

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise ValueError("request headers too large")  # the parser answers 400 and closes

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._entry.busy = True
        self._arm(self.guard.limits.body_timeout_seconds)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._entry.busy = False
        self._header_bytes = 0
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._arm(self.guard.limits.header_timeout_seconds)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket endpoint has its own deadline for `connect`
        self._admitted = False  # the WebSocket protocol releases the connection
        self._entry.busy = False
        self.guard.handoff = self._entry
        try:
            super().handle_websocket_upgrade()
        finally:
            self.guard.handoff = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        """Too slow to send a request's headers or body: 408, then close."""
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.shed("request_timeout")
        if self.cycle is None or not self.cycle.response_started:
            message = "the request was not received in time"
            self.transport.write(_plain_response("Request Timeout", RequestTimeoutError(message)))
        self.transport.close()


class _GuardedWsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol that releases its connection, can drop a slow reader, and
    writes the frames sent within one event-loop step together.

    A turn answers with several frames (its events and the answer); written one by one, each
    was a system call holding the GIL — a quarter of a turn's CPU. Data frames are framed at
    once and written at the end of the step (`_flush`); anything else uvicorn writes (a close,
    a pong) takes the frames still waiting along, in order, since they share one output buffer.
    """

    guard: ClassVar[ConnectionGuard]
    _flush_due = False
    _text_taker: Callable[[str], bool] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        entry = self.guard.handoff
        if entry is None:  # not from an upgrade of ours (never the case in the gateway)
            host = self.client[0] if self.client else "unknown"
            entry = OpenConnection(host, self.client, transport.abort)
            self.guard.admit(entry)
        entry.close, entry.websocket = transport.abort, True
        self._entry = entry

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.release(self._entry)
        super().connection_lost(exc)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none when the upgrade was refused
        if scope is not None:
            scope["extensions"][WRITE_NOW] = self.write_now
            scope["extensions"][TAKE_TEXT] = self.take_text

    def take_text(self, taker: Callable[[str], bool] | None) -> None:
        """From now on offer each text message to `taker` as it arrives (None: stop). What
        it takes (True) skips the ASGI receive queue — and uvicorn's pause and resume of
        reading around each queued message; what it declines (False) is queued as before.
        Offered only while nothing waits in the queue (order kept) and the peer reads."""
        self._text_taker = taker

    def send_receive_event_to_app(self) -> None:
        taker = self._text_taker
        if (
            taker is not None
            and self.curr_msg_data_type == "text"
            and not self.close_sent
            and self.queue.empty()
            and self.writable.is_set()
        ):
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            try:
                taken = taker(data.decode())
            except UnicodeDecodeError:
                taken = False  # uvicorn's own path closes with 1007
            except Exception:
                log.exception("a text message could not be handed over; queued instead")
                taken = False
            if taken:
                self.frames = []
                return
        super().send_receive_event_to_app()

    def write_now(self, text: str, flush: bool = False) -> bool:
        """Frame a text message without the ASGI send's awaits, when nothing holds it back
        (open for data, the peer reading); False when it must go through the ASGI send,
        which waits for the reader or refuses as before. `flush`: written now, with the
        frames waiting before it (a request's answer), not at the end of the step."""
        if self.disconnected or not self.writable.is_set() or not self._open_for_data():
            return False
        try:
            self.conn.send_text(text.encode())
        except InvalidState:
            return False
        if flush:
            self._flush()
        else:
            self._flush_soon()
        return True

    async def send(self, message: Any) -> None:
        """A close while the peer is not reading is written past the full buffer, and the
        connection is dropped shortly after (the peer would never read its way to it)."""
        paused = not self.writable.is_set()
        if message["type"] == "websocket.close" and paused and not self.close_sent:
            self.conn.send_close(message.get("code", 1000), message.get("reason") or "")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.queue.put_nowait({"type": "websocket.disconnect", "code": message.get("code")})
            self.loop.call_later(SLOW_READER_CLOSE_GRACE_SECONDS, self.transport.abort)
            return
        if message["type"] == "websocket.send" and self._open_for_data():
            await self._send_data(message)
            return
        await super().send(message)

    def _open_for_data(self) -> bool:
        return self.handshake_complete and not self.close_sent and self.initial_response is None

    async def _send_data(self, message: Any) -> None:
        await self.writable.wait()  # a reader that fell behind holds senders here, as before
        if self.disconnected:
            raise ClientDisconnected()
        try:
            if message.get("bytes") is not None:
                self.conn.send_binary(message["bytes"])
            elif message.get("text") is not None:
                self.conn.send_text(message["text"].encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False  # a flush still scheduled finds nothing, or later frames
        output = self.conn.data_to_send()
        if output and not self.transport.is_closing():
            self.transport.write(b"".join(output))


def guarded_protocols(guard: ConnectionGuard) -> tuple[type[asyncio.Protocol], type[Any]]:
    """The HTTP and WebSocket protocol classes for a uvicorn server, bound to `guard`."""
    http = type("GuardedHttpProtocol", (_GuardedHttpProtocol,), {"guard": guard})
    ws = type("GuardedWsProtocol", (_GuardedWsProtocol,), {"guard": guard})
    return http, ws


class WsBudget:
    """What one WebSocket connection may hold: requests in flight, bytes queued to send."""

    def __init__(self, limits: LimitsConfig, rate: RateLimiter | None = None) -> None:
        self.limits = limits
        self.rate = rate
        self.credential: str | None = None  # the token the connection authenticated with
        self.in_flight = 0
        self.queued_bytes = 0

    def start_request(self) -> TooManyRequestsError | None:
        """Count a request in; or the refusal to answer it with (nothing counted then)."""
        if self.rate is not None and self.credential is not None:
            try:
                self.rate.charge(self.credential)
            except TooManyRequestsError as exc:
                return exc
        limit = self.limits.max_in_flight_per_connection
        if self.in_flight >= limit:
            return TooManyRequestsError(
                f"{limit} requests already in flight on this connection; wait for their "
                "answers before sending more",
                details={"limit": limit, "setting": "gateway.limits.maxInFlightPerConnection"},
            )
        self.in_flight += 1
        return None

    def can_start_now(self) -> bool:
        """Whether `start_request` would count a request in without refusing it, and without
        charging a rate (the per-token rate, when configured, refuses on its own)."""
        no_rate = self.rate is None or self.rate.rate is None
        return no_rate and self.in_flight < self.limits.max_in_flight_per_connection

    def finish_request(self) -> None:
        self.in_flight -= 1

    def queue(self, size: int) -> bool:
        """Count `size` bytes as waiting to be sent; False when that passes the cap."""
        if self.queued_bytes + size > self.limits.max_queued_bytes_per_connection:
            return False
        self.queued_bytes += size
        return True

    def sent(self, size: int) -> None:
        self.queued_bytes -= size


class RateLimiter:
    """Requests per second per token (a token bucket each), HTTP and WebSocket alike."""

    def __init__(self, limits: LimitsConfig) -> None:
        self.rate = limits.requests_per_second_per_token
        self.burst = float(limits.request_burst_per_token)
        self._buckets: dict[bytes, tuple[float, float]] = {}  # credential digest → level, time

    def charge(self, credential: str) -> None:
        """Count one request of this credential; TooManyRequestsError when over its rate."""
        if self.rate is None:
            return
        key = hashlib.sha256(credential.encode()).digest()  # no secret kept in memory as is
        now = time.monotonic()
        level, then = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - then) * self.rate)
        if level < 1.0:
            self._buckets[key] = (level, now)
            raise TooManyRequestsError(
                f"over {self.rate:g} requests per second for this token",
                details={
                    "retryAfterSeconds": round((1.0 - level) / self.rate, 3),
                    "setting": "gateway.limits.requestsPerSecondPerToken",
                },
            )
        self._buckets[key] = (level - 1.0, now)
