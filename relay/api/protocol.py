"""The HTTP/1.1 server protocol with the relay's ingest limits, for uvicorn's ``http=`` option.

uvicorn over httptools bounds nothing a client sends before the app sees it: llhttp has no
limit on the size of the headers, httptools joins the pieces of a header value into one
``bytes`` as they arrive (a 64 MB ``X-GitHub-Event`` was buffered whole, then stored and
logged), and a connection that sends nothing, or a byte a minute, is kept for ever. This
subclass of uvicorn's httptools protocol adds, per connection:

- a bound on the header bytes (request line included) and on the number of header fields:
  ``431``. Bytes are counted as they are read, so at most one read (256 KiB) beyond the
  bound is ever held;
- deadlines: for the headers, between two reads of the body, and for the whole request:
  ``408``;
- a bound on the connections one process holds: ``503`` at once, before reading anything.

A refusal answers problem+json, closes the connection and logs ``http.refused``; if the app
was already reading that request, it sees a disconnect and its answer goes nowhere.

    uvicorn.run(app, **server_options(settings))
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from config.settings import Settings
from relay.api.problems import MEDIA_TYPE, Problem

log = structlog.get_logger("relay.api")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100
    headers_timeout_s: float = 60.0
    body_timeout_s: float = 60.0
    request_timeout_s: float = 300.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
            headers_timeout_s=settings.headers_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            request_timeout_s=settings.request_timeout_s,
            max_connections=settings.max_connections,
        )


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options ``relay serve`` and ``relay dev`` share.

    The protocol goes in as a partial of a module-level class: ``relay serve --workers N``
    pickles uvicorn's config into each worker process, and this pickles by reference.
    """
    protocol = functools.partial(LimitedHttpProtocol, limits=HttpLimits.from_settings(settings))
    return {
        "http": protocol,
        "log_config": None,
        "access_log": settings.access_log,
        "proxy_headers": False,
    }


class LimitedHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits = HttpLimits(),
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._refused = False
        # Between requests too: the next byte read starts a request's headers.
        self._reading_headers = True
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._request_started = 0.0
        self._last_read = 0.0

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                503, "too_many_connections", "this relay process is at its connection limit"
            )
            return
        # A connection that never sends a byte is on the headers' clock from the start.
        self._start_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._reading_headers:
            self._last_read = self.loop.time()
        elif self._deadline is None:  # the first byte of a further request on this connection
            self._start_request()
        super().data_received(data)
        if self._reading_headers and not self._refused and not self.transport.is_closing():
            # The headers are still incomplete after this read, so all of it belonged to them
            # (except, with pipelining, the end of the previous request read in the same go:
            # an over-count that only makes the bound stricter).
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._too_large()

    # --- parser callbacks ------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        # Headers that came in one read (with or without the body) were not counted above.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._too_large()
            return
        if len(self.headers) > self.limits.max_header_count:
            self._refuse(
                431,
                "too_many_headers",
                f"the request has more than {self.limits.max_header_count} header fields",
            )
            return
        self._reading_headers = False
        self._last_read = self.loop.time()
        self._arm(self._body_wait(self._last_read))
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        # After a refusal the parser still hands over the rest of the read it was given.
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel_deadline()
        self._reading_headers = True
        super().on_message_complete()

    # --- deadlines -------------------------------------------------------------------------

    def _start_request(self) -> None:
        self._header_bytes = 0
        self._request_started = self.loop.time()
        self._arm(min(self.limits.headers_timeout_s, self.limits.request_timeout_s))

    def _body_wait(self, now: float) -> float:
        """Seconds until the body has taken too long: between two reads, or in all."""
        idle = self._last_read + self.limits.body_timeout_s - now
        total = self._request_started + self.limits.request_timeout_s - now
        return min(idle, total)

    def _arm(self, delay: float) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(max(delay, 0.0), self._on_deadline)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self._refused or self.transport.is_closing():
            return
        limits = self.limits
        if self._reading_headers:
            seconds = min(limits.headers_timeout_s, limits.request_timeout_s)
            self._refuse(408, "headers_timeout", f"the headers took more than {seconds:g} s")
            return
        now = self.loop.time()
        if self.flow.read_paused:
            # The app has not taken what was read yet: the wait is ours, not the client's.
            self._last_read = now
            self._arm(limits.body_timeout_s)
            return
        left = self._body_wait(now)
        if left > 0:  # a read came in since this deadline was set
            self._arm(left)
        elif now - self._request_started >= limits.request_timeout_s:
            self._refuse(
                408, "request_timeout", f"the request took more than {limits.request_timeout_s:g} s"
            )
        else:
            self._refuse(
                408,
                "body_timeout",
                f"no part of the body came for {limits.body_timeout_s:g} s",
            )

    # --- refusals --------------------------------------------------------------------------

    def _too_large(self) -> None:
        self._refuse(
            431, "headers_too_large", f"the headers exceed {self.limits.max_header_bytes} bytes"
        )

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        self._refused = True
        self._cancel_deadline()
        cycle = self.cycle
        answered = False
        if cycle is not None and not cycle.response_complete:
            # The app is on this request (or on the one before it): from now on it reads a
            # disconnect and its answer is dropped.
            answered = cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
        elif cycle is not None and not self._reading_headers:
            answered = True  # it answered early (a 404, say) while the body still came
        if not answered:
            self.transport.write(self._problem(status, reason, detail))
        self.transport.close()
        client = self.client[0] if self.client else None
        log.info("http.refused", reason=reason, status=status, client=client)

    def _problem(self, status: int, reason: str, detail: str) -> bytes:
        body = orjson.dumps(Problem(status, detail, reason=reason).body())
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: " + MEDIA_TYPE.encode() + b"\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        if status == 503:
            head.append(b"retry-after: 1\r\n")
        head.append(b"connection: close\r\n\r\n")
        return b"".join(head) + body
