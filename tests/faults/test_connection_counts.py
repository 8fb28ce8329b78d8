"""Per-client connection and request counts against a real ``relay serve``: whatever way a
connection ends, what it held is given back, so a client is never refused for connections
or requests it no longer has.

Each client is its own loopback address (127.0.0.0/8), as in test_hostile_connections.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.faults.harness import RelayStack
from tests.faults.test_ingest_limits import read_answer

LIMIT = 4


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with RelayStack(tmp_path_factory.mktemp("counts")) as stack:
        base = stack.start_api(
            RELAY_MAX_CONNECTIONS_PER_CLIENT=str(LIMIT), RELAY_MAX_REQUESTS_PER_CLIENT=str(LIMIT)
        )
        yield int(base.rsplit(":", 1)[1])


def exchange(port: int, address: str, request: bytes) -> tuple[int | None, bytes]:
    """Send ``request`` from ``address`` on a connection of its own, closed after the
    answer: the status (None: closed unanswered) and body."""
    where = ("127.0.0.1", port)
    with socket.create_connection(where, timeout=10, source_address=(address, 0)) as s:
        s.sendall(request)
        return read_answer(s)


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n"


def test_websocket_upgrade_attempts_give_back_what_they_held(port: int) -> None:
    """The relay has no WebSocket route, but uvicorn handed an ``Upgrade: websocket``
    request to its WebSocket protocol, which then owned the connection: the HTTP protocol
    never saw it end, its counts were never given back, and after LIMIT attempts the
    address was refused (429) for as long as the process ran."""
    upgrade = (
        b"GET /ingest/github HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    for _ in range(LIMIT * 2):
        status, body = exchange(port, "127.0.0.7", upgrade)
        assert status is not None, body
        assert status != 429, body

    status, body = exchange(port, "127.0.0.7", HEALTHZ)

    assert status == 200, body


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An API behind a trusted proxy on 127.0.0.1 that names the client in X-Forwarded-For,
    with a small allowance of failed sign-ins."""
    with RelayStack(tmp_path_factory.mktemp("proxied")) as stack:
        base = stack.start_api(
            RELAY_TRUSTED_PROXIES="127.0.0.1/32",
            RELAY_CLIENT_IP_HEADER="X-Forwarded-For",
            RELAY_AUTH_GUESS_BURST="3",
        )
        yield int(base.rsplit(":", 1)[1])


def test_a_client_cannot_pick_its_name_in_a_header_line_before_the_proxys(proxied: int) -> None:
    """A proxy that adds its own X-Forwarded-For line after any the client sent (HAProxy's
    ``option forwardfor``: "use the last occurrence") names the client in the last line.
    The first line is the client's to write: read first, each guess came from a "client"
    of its own, and guessing tokens was never slowed down."""
    statuses = []
    for n in range(8):
        request = (
            b"GET /api/events HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n"
            b"Authorization: Bearer not-a-token\r\n"
            b"X-Forwarded-For: 198.51.100.%d\r\n"  # the guesser's own line
            b"X-Forwarded-For: 203.0.113.9\r\n\r\n"  # the proxy's
        ) % n
        status, _ = exchange(proxied, "127.0.0.1", request)
        statuses.append(status)

    assert statuses[:3] == [401, 401, 401]
    assert set(statuses[3:]) == {429}
