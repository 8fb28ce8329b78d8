"""The HTTP/1.1 server protocol with the relay's ingest limits, for uvicorn's ``http=`` option.

uvicorn over httptools bounds nothing a client sends before the app sees it: llhttp has no
limit on the size of the headers, httptools joins the pieces of a header value into one
``bytes`` as they arrive (a 64 MB ``X-GitHub-Event`` was buffered whole, then stored and
logged), and a connection that sends nothing, or a byte a minute, is kept for ever. This
subclass of uvicorn's httptools protocol adds, per connection:

- a bound on the header bytes (request line included) and on the number of header fields:
  ``431``. Bytes are counted as they are read, so at most one read (256 KiB) beyond the
  bound is ever held;
- deadlines: for the headers, between two reads of the body, for the body's average rate
  after a grace period, and for the whole request: ``408``;
- a bound on the connections one process holds: ``503`` at once, before reading anything;
- per client (:mod:`relay.domain.clients`): a bound on its connections (``429`` at once)
  and on its requests in flight (``429`` once their headers are read), so that one client
  holding many half-sent requests cannot take every slot from the others.

A refusal answers problem+json, closes the connection (lingering, so that the client reads
the answer) and logs ``http.refused`` (once per reason and client every 10 s, with a count
of them: the metric counts each); if the app was already reading that request, it sees
a disconnect and its answer goes nowhere. When the app itself answers before the body has
all come (a 413, a 401 on its headers alone), the answer says ``connection: close`` and the
connection closes the same lingering way: a client that reuses connections (httpx) must not
send its next request on one we are about to close.

    uvicorn.run(app, **server_options(settings))
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from config.settings import Settings
from relay.api.bodies import CLIENT_SCOPE_KEY
from relay.api.problems import MEDIA_TYPE, Problem
from relay.domain.clients import ClientIdentity
from relay.domain.sampling import LogSampler
from relay.observability.metrics import HTTP_REFUSED

log = structlog.get_logger("relay.api")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100
    headers_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    body_min_rate_bytes_s: float = 1024.0
    request_timeout_s: float = 300.0
    max_connections: int = 1000
    max_connections_per_client: int = 100
    max_requests_per_client: int = 100
    identity: ClientIdentity = field(default_factory=ClientIdentity)

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
            headers_timeout_s=settings.headers_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            body_min_rate_bytes_s=settings.body_min_rate_bytes_s,
            request_timeout_s=settings.request_timeout_s,
            max_connections=settings.max_connections,
            max_connections_per_client=settings.max_connections_per_client,
            max_requests_per_client=settings.max_requests_per_client,
            identity=ClientIdentity.from_settings(
                settings.trusted_proxies, settings.client_ip_header
            ),
        )


@dataclass
class ClientCounts:
    """What each client holds in this process: connections (oldest first), and requests in
    flight."""

    connections: dict[str, dict[LimitedHttpProtocol, None]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    # Connections closing (draining what their client still sends): not counted against
    # the connection cap, which they would otherwise fill after a burst of refusals.
    lingering: int = 0
    # Refusals are logged once per reason and client per interval, with a count: a client
    # opening connections past its limit must not write a log line with each.
    logged: LogSampler = field(default_factory=LogSampler, compare=False)

    @staticmethod
    def take(counts: Counter[str], key: str, limit: int) -> bool:
        if counts[key] >= limit:
            return False
        counts[key] += 1
        return True

    @staticmethod
    def give_back(counts: Counter[str], key: str) -> None:
        counts[key] -= 1
        if counts[key] <= 0:
            del counts[key]  # a client that left leaves nothing behind

    def hold(self, key: str, connection: LimitedHttpProtocol, limit: int) -> bool:
        held = self.connections.setdefault(key, {})
        if len(held) >= limit:
            return False
        held[connection] = None
        return True

    def let_go(self, key: str, connection: LimitedHttpProtocol) -> None:
        held = self.connections.get(key, {})
        held.pop(connection, None)
        if not held:
            self.connections.pop(key, None)

    def reclaimable(self, key: str) -> LimitedHttpProtocol | None:
        """At the connection cap, a connection to close so that client ``key`` gets one:
        the oldest of the client holding the most (more than ``key`` would), that is idle
        between requests or still waiting for its headers. None if that is no one: then
        the newcomer is the one refused."""
        if not self.connections:
            return None
        heaviest = max(self.connections, key=lambda k: len(self.connections[k]))
        if heaviest == key:
            return None
        if len(self.connections[heaviest]) <= len(self.connections.get(key, ())) + 1:
            return None
        return next((c for c in self.connections[heaviest] if c.reclaimable), None)


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options ``relay serve`` and ``relay dev`` share.

    The protocol goes in as a partial of a module-level class: ``relay serve --workers N``
    pickles uvicorn's config into each worker process, and this pickles by reference (the
    per-client counts with it: each process counts what it holds).
    """
    protocol = functools.partial(
        LimitedHttpProtocol, limits=HttpLimits.from_settings(settings), clients=ClientCounts()
    )
    return {
        "http": protocol,
        "log_config": None,
        "access_log": settings.access_log,
        "proxy_headers": False,
    }


# A closing connection drains what the client is still sending until it pauses this long,
# and for this long at most (nginx's lingering_timeout and lingering_time).
LINGER_S = 2.0
LINGER_MAX_S = 10.0
# Closed to make room for another client's connection (ClientCounts.reclaimable).
RECLAIMED = "connection_reclaimed"
# Where a connection is in its current request; the deadline's meaning depends on it.
_IDLE, _HEADERS, _BODY = 0, 1, 2


class LimitedHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits = HttpLimits(),
        clients: ClientCounts | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.clients = clients if clients is not None else ClientCounts()
        self._peer = ""  # the client's key; "" for a trusted proxy (limited per request)
        self._held: list[str] = []  # client keys of this connection's requests in flight
        self._closing = False
        self._closing_since = 0.0
        self._lingering = False
        self._phase = _HEADERS
        self._header_bytes = 0  # of the current request, in reads that did not end them
        self._read_size = 0  # of the read being parsed
        # One timer per connection, armed once and moved on only when it fires: setting and
        # cancelling one per request cost more than everything else here together.
        self._deadline: asyncio.TimerHandle | None = None
        self._request_started = 0.0
        self._last_read = 0.0
        self._body_started = 0.0
        self._body_bytes = 0

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits
        address = self.client[0] if self.client else ""
        trusted = limits.identity.is_trusted(address)
        peer = "" if trusted else limits.identity.peer_key(address)
        if len(self.connections) - self.clients.lingering > limits.max_connections:
            # Full: make room at the expense of whoever holds the most, if that is someone
            # else, and only with a connection that is not in the middle of a request.
            victim = self.clients.reclaimable(peer) if peer else None
            if victim is None:
                self._refuse(
                    503, "too_many_connections", "this relay process is at its connection limit"
                )
                return
            victim._reclaim()
        if not trusted:
            if not self.clients.hold(peer, self, limits.max_connections_per_client):
                self._refuse(
                    429,
                    "too_many_connections_from_client",
                    f"this client holds {limits.max_connections_per_client} connections already",
                )
                return
            self._peer = peer
        # A connection that never sends a byte is on the headers' clock from the start.
        self._request_started = self.loop.time()
        self._arm(self._headers_wait(self._request_started))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._peer:
            self.clients.let_go(self._peer, self)
            self._peer = ""
        if self._lingering:
            self._lingering = False
            self.clients.lingering -= 1
        for key in self._held:
            self.clients.give_back(self.clients.requests, key)
        self._held.clear()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            self._last_read = self.loop.time()  # still sending: keep draining a while
            return
        if self._phase == _BODY:
            self._last_read = self.loop.time()
        elif self._phase == _IDLE:  # the first byte of a further request on this connection
            self._phase = _HEADERS
            self._header_bytes = 0
            self._request_started = self.loop.time()
            if self._deadline is None:
                self._arm(self._headers_wait(self._request_started))
        self._read_size = len(data)
        super().data_received(data)
        if self._phase == _HEADERS and not self._closing and not self.transport.is_closing():
            # The headers are still incomplete after this read, so all of it belonged to them
            # (except, with pipelining, the end of the previous request read in the same go:
            # an over-count that only makes the bound stricter).
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._too_large()

    # --- upgrades --------------------------------------------------------------------------

    def _should_upgrade(self) -> bool:
        """Never: the relay serves no WebSocket, and uvicorn hands an upgraded connection
        to another protocol, out of reach of every limit here. ``connection_lost`` then
        never comes to this one: what it held for its client (a connection, a request)
        stayed counted for good, so that after a few attempts the address was refused for
        as long as the process ran. The request is answered as plain HTTP instead."""
        return False

    def _unsupported_upgrade_warning(self) -> None:
        """Silent: uvicorn logs two warnings for each such request, a log flood for the
        asking. The app answers it like any other request."""

    # --- parser callbacks ------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        limits = self.limits
        if self._header_bytes + self._read_size > limits.max_header_bytes:
            # They ended in this read, which may hold the body too: count them exactly.
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > limits.max_header_bytes:
                self._too_large()
                return
        if len(self.headers) > limits.max_header_count:
            self._refuse(
                431,
                "too_many_headers",
                f"the request has more than {limits.max_header_count} header fields",
            )
            return
        client = self._request_client()
        if not self.clients.take(self.clients.requests, client, limits.max_requests_per_client):
            self._refuse(
                429,
                "too_many_requests_from_client",
                f"this client has {limits.max_requests_per_client} requests in flight already",
            )
            return
        self._held.append(client)
        self.scope[CLIENT_SCOPE_KEY] = client  # type: ignore[literal-required]
        self._phase = _BODY
        now = self._last_read = self._body_started = self.loop.time()
        self._body_bytes = 0
        if limits.body_timeout_s < min(limits.headers_timeout_s, limits.request_timeout_s):
            # Else the timer, set for the headers, fires before the body can be late.
            if self._deadline is not None:
                self._deadline.cancel()
            self._arm(self._body_wait(now))
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous:
            # Read when the app starts to answer (the task starts after this returns).
            cycle.send = functools.partial(self._send, cycle, cycle.send)  # type: ignore[method-assign]

    def _request_client(self) -> str:
        """Whom this request counts against: the peer, or whom a trusted proxy names."""
        identity = self.limits.identity
        if self._peer or identity.header is None:
            return self._peer
        wanted = identity.header.encode()
        # Every line of the header, in order, as one list (RFC 9110 5.3): a proxy that adds
        # a line of its own after the client's (HAProxy's forwardfor) names the client in
        # the last one, and the first is whatever the client wrote there.
        lines = [value for name, value in self.headers if name == wanted]
        if lines:
            named = identity.forwarded_key(b",".join(lines).decode("latin-1"))
            if named is not None:
                return named
        # The proxy named no one: count it as one client, rather than not at all.
        return identity.peer_key(self.client[0] if self.client else "")

    async def _send(
        self,
        cycle: RequestResponseCycle,
        send: Callable[[Any], Awaitable[None]],
        message: Any,
    ) -> None:
        if (
            message["type"] == "http.response.start"
            and self._phase == _BODY
            and not (self._closing or cycle is not self.cycle)
        ):
            # The app answers before the body has all come (a 413, a 401 on the headers
            # alone): the rest of it will not be parsed as a request, so the client must not
            # send another on this connection; uvicorn then closes it, lingering.
            cycle.keep_alive = False
            cycle.transport = _CloseLingering(self)  # type: ignore[assignment]
        await send(message)

    def on_body(self, body: bytes) -> None:
        # After a refusal the parser still hands over the rest of the read it was given.
        if not self._closing:
            self._body_bytes += len(body)
            super().on_body(body)

    def on_response_complete(self) -> None:
        if self._held:
            self.clients.give_back(self.clients.requests, self._held.pop(0))
        super().on_response_complete()
        if self._phase == _BODY and not self._closing and not self.transport.is_closing():
            # The app answered before the body ended (a 413, a 404): the rest of the body
            # is of no use, and reading on to find the next request could take long.
            self._close_lingering()

    def on_message_complete(self) -> None:
        if self._closing:
            return
        self._phase = _IDLE
        super().on_message_complete()

    # --- reclaiming ------------------------------------------------------------------------

    @property
    def reclaimable(self) -> bool:
        """Idle between requests, or still waiting for a request's headers: closing it
        loses no request the app has begun."""
        return (
            not self._closing
            and self._phase != _BODY
            and (self.cycle is None or self.cycle.response_complete)
        )

    def _reclaim(self) -> None:
        if self._phase == _IDLE:
            # Between requests: a plain close, as at the end of keep-alive (an answer here
            # would be read as the answer to the client's next request).
            self._closing = True
            self.transport.close()
            self._refused(RECLAIMED, None)
            return
        self._refuse(503, RECLAIMED, "the relay is at its connection limit; try again")

    @property
    def client_address(self) -> str | None:
        return self.client[0] if self.client else None

    # --- deadlines -------------------------------------------------------------------------

    def _headers_wait(self, now: float) -> float:
        limit = min(self.limits.headers_timeout_s, self.limits.request_timeout_s)
        return self._request_started + limit - now

    def _body_wait(self, now: float) -> float:
        """Seconds until the body has taken too long: between two reads, on average, or
        in all."""
        return min(self._idle_wait(now), self._rate_wait(now), self._total_wait(now))

    def _idle_wait(self, now: float) -> float:
        return self._last_read + self.limits.body_timeout_s - now

    def _rate_wait(self, now: float) -> float:
        # mod_reqtimeout's MinRate: each byte buys 1/rate s beyond the grace period.
        rate = self.limits.body_min_rate_bytes_s
        if rate <= 0:
            return float("inf")
        return self._body_started + self.limits.body_timeout_s + self._body_bytes / rate - now

    def _total_wait(self, now: float) -> float:
        return self._request_started + self.limits.request_timeout_s - now

    def _arm(self, delay: float) -> None:
        self._deadline = self.loop.call_later(max(delay, 0.0), self._on_deadline)

    def _on_deadline(self) -> None:
        self._deadline = None
        if self._closing or self.transport.is_closing() or self._phase == _IDLE:
            return  # an idle connection is uvicorn's keep-alive timeout's to close
        limits = self.limits
        now = self.loop.time()
        if self._phase == _HEADERS:
            left = self._headers_wait(now)
            if left > 0:  # a later request on this connection
                self._arm(left)
            else:
                seconds = min(limits.headers_timeout_s, limits.request_timeout_s)
                self._refuse(408, "headers_timeout", f"the headers took more than {seconds:g} s")
            return
        if self.flow.read_paused:
            # The app has not taken what was read yet: the wait is ours, not the client's,
            # and the body's grace period starts again.
            self._last_read = now
            if limits.body_min_rate_bytes_s > 0:
                self._body_started = now - self._body_bytes / limits.body_min_rate_bytes_s
            self._arm(limits.body_timeout_s)
            return
        left = self._body_wait(now)
        if left > 0:
            self._arm(left)
        elif self._total_wait(now) <= 0:
            self._refuse(
                408, "request_timeout", f"the request took more than {limits.request_timeout_s:g} s"
            )
        elif self._idle_wait(now) <= 0:
            self._refuse(
                408,
                "body_timeout",
                f"no part of the body came for {limits.body_timeout_s:g} s",
            )
        else:
            self._refuse(
                408,
                "body_too_slow",
                f"the body came slower than {limits.body_min_rate_bytes_s:g} bytes/s",
            )

    # --- refusals --------------------------------------------------------------------------

    def _too_large(self) -> None:
        self._refuse(
            431, "headers_too_large", f"the headers exceed {self.limits.max_header_bytes} bytes"
        )

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        cycle = self.cycle
        answered = False
        if cycle is not None and not cycle.response_complete:
            # The app is on this request (or on the one before it): from now on it reads a
            # disconnect and its answer is dropped.
            answered = cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
        elif cycle is not None and self._phase == _BODY:
            answered = True  # it answered early (a 404, say) while the body still came
        if not answered:
            self.transport.write(self._problem(status, reason, detail))
        self._close_lingering()
        self._refused(reason, status)

    def _refused(self, reason: str, status: int | None) -> None:
        HTTP_REFUSED.labels(reason).inc()
        client = self.client_address
        count = self.clients.logged.seen((reason, self._peer or client), self.loop.time())
        if count is not None:  # refused: how many since this client's last line for it
            log.info("http.refused", reason=reason, status=status, client=client, refused=count)

    def _close_lingering(self) -> None:
        """Stop answering; close once the client stops sending, or after ``LINGER_S``.

        Closing with the client's bytes unread makes the kernel reset the connection, and
        the client then loses the answer it was sent (a 431 for 4 MB of headers, a 413 for a
        body still coming): nginx's lingering close, for the same reason. What is read
        meanwhile is dropped unparsed.
        """
        if self._closing:
            return
        self._closing = True
        self._closing_since = self._last_read = self.loop.time()
        if self._deadline is not None:
            self._deadline.cancel()
        if self.clients.lingering >= self.limits.max_connections:
            # As many draining as serving (a flood of refused connections): close now, at
            # the risk of a reset, rather than hold a descriptor each for seconds.
            self._deadline = None
            self.transport.close()
            return
        self._lingering = True
        self.clients.lingering += 1
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(LINGER_S, self._linger)

    def _linger(self) -> None:
        now = self.loop.time()
        left = min(self._last_read + LINGER_S, self._closing_since + LINGER_MAX_S) - now
        if left > 0 and not self.transport.is_closing():
            self._deadline = self.loop.call_later(left, self._linger)
        else:
            self._deadline = None
            self.transport.close()

    def _problem(self, status: int, reason: str, detail: str) -> bytes:
        body = orjson.dumps(Problem(status, detail, reason=reason).body())
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: " + MEDIA_TYPE.encode() + b"\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        if status in (429, 503):
            head.append(b"retry-after: 1\r\n")
        head.append(b"connection: close\r\n\r\n")
        return b"".join(head) + body


class _CloseLingering:
    """A connection's transport as seen by a response that comes before its request's body
    has all arrived: closing it drains what the client still sends, then closes."""

    def __init__(self, protocol: LimitedHttpProtocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    def close(self) -> None:
        self._protocol._close_lingering()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
