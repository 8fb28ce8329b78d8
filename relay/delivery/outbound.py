"""The one place that speaks HTTP to subscribers.

Every attempt is bounded by a total deadline (httpx's read timeout is per chunk), reads at
most an excerpt of the response (``aiter_raw``: no decompression, so no zip bombs), never
follows redirects and ignores proxy variables from the environment. Connections are made
only to addresses the :class:`~relay.domain.addresses.AddressGuard` allows: an IP written in
the URL is checked before anything is sent, and a hostname is checked on every address it
resolves to by the resolver the connection then uses, so a name that resolves (or starts
to resolve, DNS rebinding) to a private address is refused too.

httpx is the API; its transport is aiohttp's connection pool (httpx-aiohttp): on this
relay's hot path httpcore's pool cost about 2.7 ms of CPU per request against 0.4 ms
(``benchmarks/throughput.py``'s drain), mostly in checking every pooled connection on
every request.
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


class _GuardedTransport(AiohttpTransport):
    """aiohttp does not ask a resolver about an IP written in the URL: check it here."""

    def __init__(self, guard: AddressGuard, session: aiohttp.ClientSession) -> None:
        super().__init__(client=session)
        self._guard = guard

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        address = ip_literal(request.url.host)
        if address is not None and not self._guard.allows(address):
            raise BlockedAddress(f"{request.url.host} is an address the relay may not call")
        return await super().handle_async_request(request)


class _NoCookies(httpx.Cookies):
    """Receivers' cookies are neither kept nor sent back: a delivery is not a browsing
    session (and parsing every response's cookies cost ~9% of a worker's CPU)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Client(httpx.AsyncClient):
    @property
    def cookies(self) -> httpx.Cookies:
        return _NoCookies()

    @cookies.setter
    def cookies(self, _: object) -> None:
        pass


def make_client(max_connections: int, timeout_s: float, guard: AddressGuard) -> httpx.AsyncClient:
    """The outbound client; one per process, shared by every attempt. Create it inside the
    event loop that will use it (aiohttp binds its pool to the running loop)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max_connections,
            keepalive_timeout=5.0,
            resolver=_GuardedResolver(guard),
            ssl=httpx.create_ssl_context(trust_env=False),
        ),
        auto_decompress=False,
        trust_env=False,
    )
    return _Client(
        transport=_GuardedTransport(guard, session),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_s),
        headers={"user-agent": USER_AGENT},
    )


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
    client: httpx.AsyncClient,
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
            async with client.stream("POST", url, content=body, headers=headers) as response:
                excerpt = bytearray()
                async for chunk in response.aiter_raw():
                    excerpt += chunk[: excerpt_bytes - len(excerpt)]
                    if len(excerpt) >= excerpt_bytes:
                        break
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
