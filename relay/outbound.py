"""The one place that speaks HTTP to subscribers.

Every attempt is bounded by a total deadline (httpx's read timeout is per chunk), reads at
most an excerpt of the response (``aiter_raw``: no decompression, so no zip bombs), never
follows redirects and ignores proxy variables from the environment.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx

from relay.outcome import AttemptResult, parse_retry_after

USER_AGENT = "webhook-relay/0.1"


def make_client(max_connections: int, timeout_s: float) -> httpx.AsyncClient:
    """The outbound client; one per process, shared by every attempt."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
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
    except (httpx.LocalProtocolError, UnicodeError) as exc:
        # Raised while building the request, before anything is sent. h11's message quotes
        # the offending header value, which may be a credential: keep only the class.
        return AttemptResult(
            error=exc.__class__.__name__,
            error_message="the request is not valid HTTP (a header value, most likely)",
            duration_ms=elapsed_ms(),
            permanent=True,
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
