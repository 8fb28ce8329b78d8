"""The outbound sender against a raw HTTP server on 127.0.0.1 that keeps each request's
bytes, so repeated headers and what is sent back can be seen."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from relay.delivery import outbound
from relay.domain.addresses import AddressGuard

LOOPBACK = AddressGuard.from_cidrs(["127.0.0.0/8"])


class RawServer:
    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                writer.write(
                    b"HTTP/1.1 200 OK\r\nset-cookie: session=abc; Path=/\r\n"
                    b"content-length: 2\r\n\r\nok"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def header_lines(self, n: int, name: bytes) -> list[bytes]:
        lines = self.requests[n].split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
        return [line for line in lines if line.lower().startswith(name + b":")]


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    server = await raw.start()
    yield raw
    server.close()


async def post(sender: outbound.Sender, url: str, headers: dict[str, str]) -> int | None:
    result = await outbound.post(sender, url, b"{}", headers, timeout_s=5, excerpt_bytes=100)
    return result.status_code


async def test_no_cookies_go_back_and_default_headers_give_way_to_the_subscriptions(
    raw_server: RawServer,
) -> None:
    sender = outbound.make_sender(4, LOOPBACK)
    # A name, not an IP: aiohttp's cookie jar would keep cookies for it.
    url = f"http://localhost:{raw_server.port}/hook"
    try:
        assert await post(sender, url, {"content-type": "application/json"}) == 200
        assert await post(sender, url, {"User-Agent": "acme-hooks/2"}) == 200
    finally:
        await sender.aclose()
    assert raw_server.header_lines(0, b"user-agent") == [b"user-agent: webhook-relay/0.1"]
    # Responses are read raw: the relay asks for them uncompressed.
    assert raw_server.header_lines(0, b"accept-encoding") == [b"accept-encoding: identity"]
    # A subscription's own User-Agent replaces the relay's, whatever its case.
    assert [v.lower() for v in raw_server.header_lines(1, b"user-agent")] == [
        b"user-agent: acme-hooks/2"
    ]
    assert raw_server.header_lines(1, b"cookie") == []


async def test_an_ip_the_guard_refuses_is_refused_every_time_without_a_request(
    raw_server: RawServer,
) -> None:
    sender = outbound.make_sender(4, AddressGuard())
    url = f"http://127.0.0.1:{raw_server.port}/hook"
    try:
        for _ in range(2):  # the verdict is kept per URL
            result = await outbound.post(sender, url, b"{}", {}, timeout_s=5, excerpt_bytes=10)
            assert (result.error, result.reached, result.permanent) == (
                "BlockedAddress", False, True,
            )  # fmt: skip
            assert result.error_message == "127.0.0.1 is an address the relay may not call"
    finally:
        await sender.aclose()
    assert raw_server.requests == []


async def test_credentials_in_the_url_go_as_basic_auth(raw_server: RawServer) -> None:
    """https://user:password@host/ is how many receivers take a shared secret."""
    sender = outbound.make_sender(4, LOOPBACK)
    try:
        url = f"http://hook%20user:s3cr%2Ft@127.0.0.1:{raw_server.port}/hook"
        assert await post(sender, url, {}) == 200
    finally:
        await sender.aclose()
    expected = base64.b64encode(b"hook user:s3cr/t")
    [line] = raw_server.header_lines(0, b"authorization")
    name, value = line.split(b": ", 1)
    assert (name.lower(), value) == (b"authorization", b"Basic " + expected)
    assert b"s3cr" not in raw_server.requests[0].split(b"\r\n", 1)[0]  # not in the request line
