"""A memory budget for the request bodies one API process is reading.

Each request body is held whole before it is verified (a signature covers all of it), so
40 senders of 26 MB bodies with a bad signature took an API from 98 MB to 912 MB, and at the
default limits (1,000 connections, 25 MiB a body) nothing stopped one at 25 GB. This ASGI
middleware counts the body bytes every request in the process holds, from the first byte
the app takes to the end of its answer, and refuses what would pass the budget
(``RELAY_BODY_BUFFER_BYTES``) with ``503`` and ``Retry-After``: a sender retries later, the
process never runs out of memory.

- A declared ``Content-Length`` is reserved whole before a byte is read: refused at once,
  unread (the connection then drains and closes, see :mod:`relay.api.protocol`).
- A body of no declared length is counted as the app reads it; the request that would pass
  the budget sees a disconnect, and the sender gets the ``503``.
- One client (as :mod:`relay.api.protocol` names it) holds at most half the budget, so a
  single sender of large bodies cannot refuse everyone else's webhooks; a body declared
  larger than that could never fit, and is ``413``.

    app.add_middleware(BodyBudget, limit=settings.body_buffer_bytes)
"""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.api.problems import Problem, problem_response
from relay.domain.sampling import LogSampler
from relay.observability.metrics import HTTP_REFUSED

log = structlog.get_logger("relay.api")

# Where relay.api.protocol puts the client a request counts against (per-client limits).
CLIENT_SCOPE_KEY = "relay.client"
# One log line at most this often while bodies are refused: not one per request.
LOG_EVERY_S = 10.0
_DISCONNECT: Message = {"type": "http.disconnect"}
BUDGET_FULL = "body_budget_full"


class BodyBudget:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.per_client = limit // 2
        self.held = 0
        self._by_client: dict[str, int] = {}
        self._logged = LogSampler(LOG_EVERY_S)

    def _take(self, client: str, size: int) -> bool:
        if not size:
            return True
        mine = self._by_client.get(client, 0) + size
        if self.held + size > self.limit or mine > self.per_client:
            return False
        self.held += size
        self._by_client[client] = mine
        return True

    def _give_back(self, client: str, size: int) -> None:
        if not size:
            return
        self.held -= size
        left = self._by_client[client] - size
        if left > 0:
            self._by_client[client] = left
        else:
            del self._by_client[client]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get(CLIENT_SCOPE_KEY) or (scope["client"] or ("",))[0]
        declared = _content_length(scope)
        if declared > self.per_client:
            # It could never fit: a 413 (final), not a 503 the sender would retry for ever.
            problem = Problem(413, f"the body exceeds {self.per_client} bytes")
            await problem_response(problem)(scope, receive, send)
            return
        if not self._take(client, declared):
            await self._refuse(scope, receive, send, declared)
            return
        if declared or _has_length(scope):
            # The framing holds the body to its declared length: nothing more to count.
            try:
                await self.app(scope, receive, send)
            finally:
                self._give_back(client, declared)
            return
        # No length declared (chunked): counted as the app takes it.
        taken = got = 0
        over = answered = False

        async def counted() -> Message:
            nonlocal taken, got, over
            if over:
                return _DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                got += len(message.get("body", b""))
                if got > taken:
                    if not self._take(client, got - taken):
                        over = True
                        return _DISCONNECT
                    taken = got
            return message

        async def watched(message: Message) -> None:
            nonlocal answered
            if over and not answered:
                return  # the app's answer to a disconnect: the 503 goes instead
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        finally:
            self._give_back(client, taken)
        if over and not answered:
            await self._refuse(scope, receive, send, got)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        HTTP_REFUSED.labels(BUDGET_FULL).inc()
        refused = self._logged.seen(BUDGET_FULL, time.monotonic())
        if refused is not None:
            log.warning(
                "http.body_budget_full", refused=refused, held=self.held,
                limit=self.limit, path=scope["path"], bytes=size,
            )  # fmt: skip
        problem = Problem(
            503,
            "this relay process holds as many request bodies as it may; nothing was stored, "
            "try again",
            reason=BUDGET_FULL,
            headers={"retry-after": "1"},
        )
        await problem_response(problem)(scope, receive, send)


def _content_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def _has_length(scope: Scope) -> bool:
    """A ``content-length: 0``, or a request the server frames as having no body."""
    return any(name == b"content-length" for name, _ in scope["headers"])
