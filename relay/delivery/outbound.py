"""The one place that speaks HTTP to subscribers.

Every attempt is bounded by a total deadline (httpx's read timeout is per chunk), reads at
most an excerpt of the response (``aiter_raw``: no decompression, so no zip bombs), never
follows redirects and ignores proxy variables from the environment. Connections are made
only to addresses the :class:`~relay.addresses.AddressGuard` allows, checked on the
addresses actually connected to, so a hostname that resolves to a private address (or
starts to, DNS rebinding) is refused as well as a private IP written in the URL.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import httpcore
import httpx

from relay.domain.addresses import AddressGuard, BlockedAddress
from relay.domain.outcome import AttemptResult, parse_retry_after

USER_AGENT = "webhook-relay/0.1"


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, checks every address, and connects to a checked one."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        # Every address must be allowed: a name that resolves to a public and a private
        # address at once is how DNS tricks reach an internal service.
        if not addresses or not all(self._guard.allows(a) for a in addresses):
            raise BlockedAddress(f"{host} resolves to an address the relay may not call")
        # Several addresses (IPv6 and IPv4, say) share the deadline, so one that does not
        # answer cannot use it all up before the next is tried.
        each = timeout if timeout is None or len(addresses) == 1 else timeout / len(addresses)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, each, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, guard: AddressGuard, max_connections: int) -> None:
        super().__init__(trust_env=False)
        # httpx does not take a network backend, so its pool is replaced by one that has
        # ours; tests/integration/test_addresses.py proves the guard holds.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(guard),
        )


def make_client(max_connections: int, timeout_s: float, guard: AddressGuard) -> httpx.AsyncClient:
    """The outbound client; one per process, shared by every attempt."""
    return httpx.AsyncClient(
        transport=_GuardedTransport(guard, max_connections),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_s),
        headers={"user-agent": USER_AGENT},
    )


def _error_message(exc: BaseException) -> str:
    # httpx messages can embed the URL; the class and a short reason are enough for SREs.
    text = str(exc).split("\n", 1)[0]
    return (text or exc.__class__.__name__)[:200]


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
        return AttemptResult(
            error=exc.__class__.__name__,
            error_message=_error_message(exc),
            duration_ms=elapsed_ms(),
        )
    except (OSError, ValueError) as exc:
        # Invalid URLs and socket errors that httpx did not wrap.
        return AttemptResult(
            error=exc.__class__.__name__,
            error_message=_error_message(exc),
            duration_ms=elapsed_ms(),
        )
