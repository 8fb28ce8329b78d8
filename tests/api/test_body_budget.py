"""The body budget (relay.api.bodies) at the ASGI level: what is reserved, refused and given
back, for several clients at once. The app behind it is a small ASGI app that reads its
body and answers how much it got, waiting for a signal to finish (a request in flight)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from relay.api.bodies import CLIENT_SCOPE_KEY, BodyBudget

KiB = 1024
MiB = 1024 * KiB


class Reader:
    """Reads the whole body, then answers once ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.disconnects = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                await send({"type": "http.response.start", "status": 400, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


async def call(
    budget: BodyBudget, client: str, chunks: list[bytes], declared: int | None
) -> tuple[int, Any]:
    """One request through the budget; its status and body."""
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    scope = {"type": "http", "method": "POST", "path": "/ingest/x", "headers": headers,
             "client": ("127.0.0.1", 1), CLIENT_SCOPE_KEY: client}  # fmt: skip
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await budget(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    status = sent[0]["status"]
    return status, json.loads(body) if body else None


async def test_declared_bodies_are_reserved_per_client_and_in_all() -> None:
    app = Reader()
    budget = BodyBudget(app, limit=4 * MiB)  # one client: 2 MiB at most
    first = asyncio.create_task(call(budget, "a", [b"x" * 2 * MiB], 2 * MiB))
    await asyncio.sleep(0.01)
    assert budget.held == 2 * MiB

    status, problem = await call(budget, "a", [b"y" * KiB], KiB)  # a's half is taken
    assert (status, problem["reason"]) == (503, "body_budget_full")
    second = asyncio.create_task(call(budget, "b", [b"z" * MiB], MiB))
    await asyncio.sleep(0.01)
    status, _ = await call(budget, "c", [b"w" * (1 * MiB + 1)], MiB + 1)  # 2 + 1 + 1 > 4
    assert status == 503
    assert (await call(budget, "c", [b"w" * 3 * MiB], 3 * MiB))[0] == 413  # never fits

    app.release.set()
    assert await first == (200, 2 * MiB)
    assert await second == (200, MiB)
    assert budget.held == 0
    assert await call(budget, "c", [b"w" * MiB], MiB) == (200, MiB)  # all given back


async def test_a_body_of_no_declared_length_is_counted_as_it_is_read() -> None:
    app = Reader()
    app.release.set()
    budget = BodyBudget(app, limit=4 * MiB)
    chunks = [b"c" * 512 * KiB] * 3
    assert await call(budget, "a", chunks, None) == (200, 3 * 512 * KiB)
    # Past the client's half as it goes: the app sees a disconnect, the sender a 503.
    status, problem = await call(budget, "a", [b"c" * 512 * KiB] * 5, None)
    assert (status, problem["reason"]) == (503, "body_budget_full")
    assert app.disconnects == 1
    assert budget.held == 0
