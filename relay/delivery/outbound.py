"""The one place that speaks HTTP to subscribers.

Every attempt is bounded by a total deadline (httpx's read timeout is per chunk), reads at
most an excerpt of the response (``aiter_raw``: no decompression, so no zip bombs), never
follows redirects and ignores proxy variables from the environment. Connections are made
only to addresses the :class:`~relay.domain.addresses.AddressGuard` allows: an IP written in
the URL is checked before anything is sent, and a hostname is checked on every address it
resolves to by the resolver the connection then uses, so a name that resolves (or starts
to resolve, DNS rebinding) to a private address is refused too.

httpx is the API (its ``Request``, ``Response`` and transport interface); the transport is
aiohttp's connection pool (httpx-aiohttp): on this relay's hot path httpcore's pool cost
about 2.7 ms of CPU per request against 0.4 ms (``benchmarks/throughput.py``'s drain),
mostly in checking every pooled connection on every request.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

from relay.domain.addresses import AddressGuard, BlockedAddress, ip_literal
from relay.domain.outcome import AttemptResult, parse_retry_after

USER_AGENT = "webhook-relay/0.1"
# Sent unless the subscription's own headers name them. Responses are read raw (no
# decompression: no zip bombs), so a compressed one would leave an unreadable excerpt in
# the attempt log: ask for none.
_DEFAULT_HEADERS = {"user-agent": USER_AGENT, "accept-encoding": "identity"}


class _GuardedResolver(AbstractResolver):
    """Resolves a host and refuses it unless every address it has is allowed; the pool
    then connects to these addresses (and caches only these answers)."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        # Every address must be allowed: a name that resolves to a public and a private
        # address at once is how DNS tricks reach an internal service.
        if not infos or not all(self._guard.allows(info["host"]) for info in infos):
            raise BlockedAddress(f"{host} resolves to an address the relay may not call")
        return infos

    async def close(self) -> None:
        await self._inner.close()


class Sender:
    """POSTs deliveries through an httpx transport; one per process, shared by every attempt.

    httpx's ``AsyncClient`` is skipped on purpose: for each request it merges base URL,
    default headers, cookies and auth, and walks its redirect and event-hook layers, none of
    which a delivery uses (no redirects, no cookies, no auth), and that cost 110 µs of a
    worker's CPU per request, a quarter of a whole delivery (a loop of 6,000 POSTs to a fast
    receiver: 270 µs per request through the client, 160 µs through its transport). URLs
    are parsed, and an IP written in one checked against the guard, once per URL.
    """

    _MAX_URLS = 10_000

    def __init__(self, transport: httpx.AsyncBaseTransport, guard: AddressGuard) -> None:
        self._transport = transport
        self._guard = guard
        # url -> the parsed URL, or why it may not be called
        self._urls: dict[str, httpx.URL | str] = {}

    def _target(self, url: str) -> httpx.URL:
        target = self._urls.get(url)
        if target is None:
            target = httpx.URL(url)
            address = ip_literal(target.host)
            if address is not None and not self._guard.allows(address):
                # aiohttp does not ask a resolver about an IP written in the URL.
                target = f"{target.host} is an address the relay may not call"
            if len(self._urls) >= self._MAX_URLS:
                self._urls.clear()
            self._urls[url] = target
        if isinstance(target, str):
            raise BlockedAddress(target)
        return target

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """Send the request; the caller reads the response's stream and closes it."""
        given = {name.lower() for name in headers}
        if missing := {k: v for k, v in _DEFAULT_HEADERS.items() if k not in given}:
            headers = {**missing, **headers}
        request = httpx.Request("POST", self._target(url), content=body, headers=headers)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


def make_sender(max_connections: int, guard: AddressGuard) -> Sender:
    """The outbound sender over aiohttp's pool. Create it inside the event loop that will use
    it (aiohttp binds its pool to the running loop)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max_connections,
            keepalive_timeout=5.0,
            resolver=_GuardedResolver(guard),
            ssl=httpx.create_ssl_context(trust_env=False),
        ),
        auto_decompress=False,
        trust_env=False,
        # Receivers' cookies are neither kept nor sent back: a delivery is not a browsing
        # session.
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    return Sender(AiohttpTransport(client=session), guard)


def _error_message(exc: BaseException) -> str:
    # httpx messages can embed the URL; the class and a short reason are enough for SREs.
    text = str(exc).split("\n", 1)[0]
    return (text or exc.__class__.__name__)[:200]


def _describe(exc: httpx.HTTPError) -> tuple[str, str]:
    """The failure in httpx's names (ConnectError, ReadError, RemoteProtocolError), from the
    pool's own exception: the transport's mapping calls a refused connection a timeout."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError):
        reason = cause.os_error.strerror or cause.os_error.__class__.__name__
        return "ConnectError", f"cannot connect to {cause.host}:{cause.port}: {reason}"
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return "RemoteProtocolError", "the server closed the connection without a response"
    if isinstance(cause, aiohttp.ClientPayloadError):
        return "ReadError", _error_message(cause)
    if isinstance(cause, aiohttp.ClientResponseError):
        return "RemoteProtocolError", _error_message(cause)
    return exc.__class__.__name__, _error_message(exc)


async def post(
    sender: Sender,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    excerpt_bytes: int,
) -> AttemptResult:
    """POST ``body`` to ``url`` and describe what happened; never raises for HTTP trouble."""
    started = time.perf_counter()

    def elapsed_ms() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    try:
        async with asyncio.timeout(timeout_s):
            response = await sender.send(url, body, headers)
            try:
                excerpt = bytearray()
                async for chunk in response.aiter_raw():
                    excerpt += chunk[: excerpt_bytes - len(excerpt)]
                    if len(excerpt) >= excerpt_bytes:
                        break
            finally:
                await response.aclose()
            return AttemptResult(
                status_code=response.status_code,
                response_excerpt=excerpt.decode("utf-8", errors="replace"),
                duration_ms=elapsed_ms(),
                retry_after_s=parse_retry_after(
                    response.headers.get("retry-after"), datetime.now(UTC)
                ),
            )
    except BlockedAddress as exc:
        return AttemptResult(
            error="BlockedAddress", error_message=str(exc), duration_ms=elapsed_ms(),
            permanent=True, reached=False,
        )  # fmt: skip
    except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeError) as exc:
        # Raised while building the request, before anything is sent. h11's message quotes
        # the offending header value, which may be a credential: keep only the class.
        return AttemptResult(
            error=exc.__class__.__name__,
            error_message="the request is not valid HTTP (a header value, most likely)",
            duration_ms=elapsed_ms(),
            permanent=True,
            reached=False,
        )
    except TimeoutError:
        return AttemptResult(
            error="Timeout",
            error_message=f"no complete response within {timeout_s:g} s",
            duration_ms=elapsed_ms(),
        )
    except httpx.HTTPError as exc:
        name, message = _describe(exc)
        return AttemptResult(error=name, error_message=message, duration_ms=elapsed_ms())
    except (OSError, ValueError) as exc:
        # Invalid URLs and socket errors that httpx did not wrap.
        return AttemptResult(
            error=exc.__class__.__name__,
            error_message=_error_message(exc),
            duration_ms=elapsed_ms(),
        )
