"""`relay tail`: what happens (events accepted, attempts recorded), as it happens.

Ingest and delivery publish only while a tail is connected; whether one is, is asked of
Redis at most once a second per process (:class:`TailGate`), so when nobody tails the hot
paths pay a clock read per request and one small round trip a second. A tail connecting
sees what happens from about a second later on. Publishing never fails an ingest or an
attempt: a message that could not be published is only missing from the tails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from relay.domain.models import Attempt, DeliveryStatus
from relay.storage import DeliveryContext, Store

log = structlog.get_logger("relay.tail")

_CHECK_S = 1.0
# A connected tail renews its mark this often; the mark outlives a few missed renewals.
_RENEW_S = 2.0
_MARK_MS = 10_000

FAILED = frozenset({DeliveryStatus.FAILED.value, DeliveryStatus.DEAD.value})


class TailGate:
    """Publishes to the tails, when there are any."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._checked = -_CHECK_S
        self._on = False

    async def on(self) -> bool:
        """Whether a tail is connected, as Redis said at most a second ago: one request in a
        second waits for the look (a round trip), the others read a flag."""
        now = time.monotonic()
        if now - self._checked >= _CHECK_S:
            self._checked = now
            try:
                self._on = await self._store.tail.active()
            except Exception:  # Redis away: ingest and delivery say so themselves
                self._on = False
        return self._on

    async def event(self, event_id: str, source: str, event_type: str | None, at: int) -> None:
        if await self.on():
            await self._publish({"kind": "event", "at": at, "event_id": event_id,
                                 "source": source, "event_type": event_type})  # fmt: skip

    async def attempt(self, ctx: DeliveryContext, record: Attempt) -> None:
        if await self.on():
            await self._publish(
                {
                    "kind": "attempt", "at": record.started_at, "event_id": ctx.event.id,
                    "source": ctx.event.source, "event_type": ctx.event.event_type,
                    "delivery_id": ctx.delivery.id,
                    "subscription_id": ctx.delivery.subscription_id,
                    "attempt": record.number, "status": record.outcome.value,
                    "status_code": record.status_code, "duration_ms": record.duration_ms,
                    "error": record.error,
                }
            )  # fmt: skip

    async def _publish(self, message: dict[str, Any]) -> None:
        try:
            await self._store.tail.publish([orjson.dumps(message)])
        except Exception:
            log.warning("tail.publish_failed", kind=message["kind"])


@dataclass(frozen=True, slots=True)
class TailFilter:
    """Which messages one tail shows: one source's, only failed attempts, and never
    anything outside a scoped token's sources (``within``)."""

    source: str | None = None
    failed_only: bool = False
    within: frozenset[str] | None = None
    subscriptions: frozenset[str] | None = None

    def shows(self, message: dict[str, Any]) -> bool:
        if self.source is not None and message.get("source") != self.source:
            return False
        if self.within is not None and message.get("source") not in self.within:
            return False
        if (
            self.subscriptions is not None
            and message.get("kind") == "attempt"
            and message.get("subscription_id") not in self.subscriptions
        ):
            return False
        if self.failed_only:
            return message.get("kind") == "attempt" and message.get("status") in FAILED
        return True


async def follow(store: Store, shown: TailFilter) -> AsyncIterator[dict[str, Any] | None]:
    """The messages a tail shows, from now on; None now and then (a keep-alive), so the
    caller notices a client gone."""
    await store.tail.connected(_MARK_MS)
    renewed = time.monotonic()
    async for raw in store.tail.messages(_RENEW_S):
        if time.monotonic() - renewed >= _RENEW_S:
            renewed = time.monotonic()
            await store.tail.connected(_MARK_MS)
        if raw is None:
            yield None
            continue
        message = orjson.loads(raw)
        if shown.shows(message):
            yield message
