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
