"""Per-client connection and request counts against a real ``relay serve``: whatever way a
connection ends, what it held is given back, so a client is never refused for connections
or requests it no longer has.

Each client is its own loopback address (127.0.0.0/8), as in test_hostile_connections.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.faults.harness import RelayStack
from tests.faults.test_ingest_limits import read_answer

LIMIT = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayStack]:
    with RelayStack(tmp_path_factory.mktemp("counts")) as stack:
        stack.start_api(
            RELAY_MAX_CONNECTIONS_PER_CLIENT=str(LIMIT), RELAY_MAX_REQUESTS_PER_CLIENT=str(LIMIT)
        )
        yield stack


@pytest.fixture(scope="module")
def port(stack: RelayStack) -> int:
    return stack.api_ports["api"]


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


def test_connections_refused_by_the_thousand_are_not_a_log_line_each(
    stack: RelayStack, port: int
) -> None:
    """Anyone can open connections past their limit as fast as the network lets them: each
    is refused and counted in the metric, but the log says so once per reason and client
    every 10 s (with how many), not once per connection (a disk-filling flood)."""
    address = "127.0.0.20"
    held = [
        socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(address, 0))
        for _ in range(LIMIT)
    ]
    try:
        refused = [exchange(port, address, HEALTHZ)[0] for _ in range(40)]
    finally:
        for sock in held:
            sock.close()
    assert refused == [429] * 40
    lines = [
        json.loads(line)
        for line in stack.log("api").splitlines()
        if '"http.refused"' in line and f'"client":"{address}"' in line
    ]
    assert len(lines) == 1, lines
    assert lines[0]["reason"] == "too_many_connections_from_client"
    with stack.client() as client:
        metrics = client.get("/metrics").text
    assert 'relay_http_refused_total{reason="too_many_connections_from_client"} 40.0' in metrics
