"""The servers ``throughput.py`` measures the relay against, each run as its own process.

    python benchmarks/_floor.py bare --port P                   # FastAPI, answers 202
    python benchmarks/_floor.py durable --port P --redis-url U  # + one Redis Lua call
    python benchmarks/_floor.py receiver --port P               # counts deliveries

``bare`` and ``durable`` are the floors: the least an ingest endpoint can cost on the same
stack as the relay (uvicorn with uvloop and httptools, FastAPI, redis-py), without logs.
``receiver`` is a raw uvloop + httptools HTTP/1.1 server that answers 200 to every POST, so
that it is never what limits a delivery rate; ``GET /count`` reports what it got.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import cast

import httptools
import redis.asyncio as aioredis
import uvicorn
import uvloop
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.commands.core import AsyncScript

DELIVERY_HEADER = "x-github-delivery"
TTL_S = 86400

# One round trip that makes the event durable: the idempotency check-and-set, the body and an
# index entry. The relay's ingest script does this and more (metadata, per-source index,
# "not fanned out yet" mark); this is the smallest version of it.
DURABLE_LUA = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then
  return {'duplicate', redis.call('GET', KEYS[1])}
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return {'accepted', ARGV[1]}
"""


def _add_healthz(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}


def bare_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    _add_healthz(app)
    ids = itertools.count()

    @app.post("/ingest/{source}")
    async def ingest(source: str, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"event_id": f"evt_{next(ids)}", "status": "accepted"}, 202)

    return app


def durable_app(redis_url: str) -> FastAPI:
    state: dict[str, aioredis.Redis] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["redis"] = aioredis.Redis.from_url(redis_url)
        try:
            yield
        finally:
            await state["redis"].aclose()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    _add_healthz(app)
    ids = itertools.count()
    script: list[AsyncScript] = []

    @app.post("/ingest/{source}")
    async def ingest(source: str, request: Request) -> JSONResponse:
        body = await request.body()
        if not script:  # registered lazily: the client exists only once lifespan ran
            script.append(state["redis"].register_script(DURABLE_LUA))
        event_id = f"evt_{next(ids)}"
        key = request.headers.get(DELIVERY_HEADER) or event_id
        status, first = await script[0](
            keys=[f"floor:idem:{source}:{key}", f"floor:evt:{event_id}:body", "floor:events"],
            args=[event_id, body, TTL_S, time.time_ns() // 1_000_000],
        )
        if status == b"duplicate":
            return JSONResponse({"event_id": first.decode(), "status": "duplicate"}, 200)
        return JSONResponse({"event_id": event_id, "status": "accepted"}, 202)

    return app


# --- the receiver --------------------------------------------------------------------------


class Tally:
    """What the receiver got: every POST, the distinct ``webhook-id`` values among them, and
    the distinct paths they were sent to (one event fanned out to many subscriptions, one
    path each, has one ``webhook-id``)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.ids: set[bytes] = set()
        self.paths: set[bytes] = set()
        self.first = 0.0  # time.time() of the first POST
        self.last_new = 0.0  # time.time() of the last POST with an id not seen before

    def record(self, webhook_id: bytes | None, path: bytes) -> None:
        now = time.time()
        self.requests += 1
        self.paths.add(path)
        if not self.first:
            self.first = now
        if webhook_id is not None and webhook_id not in self.ids:
            self.ids.add(webhook_id)
            self.last_new = now

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "requests": self.requests,
                "unique": len(self.ids),
                "paths": len(self.paths),
                "first": self.first,
                "last_new": self.last_new,
            }
        ).encode()


def _response(status: bytes, body: bytes, keep_alive: bool) -> bytes:
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain\r\ncontent-length: "
        + str(len(body)).encode() + b"\r\nconnection: " + connection + b"\r\n\r\n" + body
    )  # fmt: skip


class ReceiverProtocol(asyncio.Protocol):
    """One connection; httptools parses (keep-alive, pipelining, chunked bodies)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.webhook_id: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.webhook_id = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self.webhook_id = value

    def on_message_complete(self) -> None:
        if self.transport is None:
            return
        method = self.parser.get_method()
        if method == b"GET" and self.url == b"/count":
            status, body = b"200 OK", self.tally.as_json()
        elif method == b"GET" and self.url == b"/reset":
            self.tally.reset()
            status, body = b"200 OK", b"reset"
        elif method == b"POST":
            self.tally.record(self.webhook_id, self.url)
            status, body = b"200 OK", b"ok"
        else:
            status, body = b"404 Not Found", b""
        keep_alive = self.parser.should_keep_alive()
        self.transport.write(_response(status, body, keep_alive))
        if not keep_alive:
            self.transport.close()


async def serve_receiver(port: int) -> None:
    tally = Tally()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ReceiverProtocol(tally), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("kind", choices=["bare", "durable", "receiver"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", help="for durable")
    args = parser.parse_args(argv)
    if args.kind == "receiver":
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(serve_receiver(args.port))
        return
    if args.kind == "durable" and not args.redis_url:
        parser.error("durable needs --redis-url")
    app = bare_app() if args.kind == "bare" else durable_app(args.redis_url)
    # The relay's own uvicorn settings (relay/cli/main.py), minus its logging: no access log.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
