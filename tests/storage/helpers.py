"""Building blocks for storage tests: events, subscriptions and deliveries written through
the store itself."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from relay.domain.breaker import NOTHING, LaneStep
from relay.domain.clock import now_ms
from relay.domain.failing import NO_CHANGE, FailingUpdate
from relay.domain.ids import new_id
from relay.domain.models import (
    Attempt,
    DeliveryMode,
    DeliveryStatus,
    SourceIn,
    Subscription,
    Trigger,
)
from relay.storage import DeliveryContext, NewDeliveries, NewDelivery, NewEvent, Store
from relay.storage.keys import Keys

_serial = itertools.count()
# A secret that signs (the others here are never used to sign).
_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _id(prefix: str) -> str:
    # Sortable like real ids: creation order is id order.
    return f"{prefix}_{now_ms():013d}{next(_serial):013d}"


async def stored_event(store: Store, key: str | None = None) -> str:
    await store.sources.put("src", SourceIn(), now_ms())
    found = await store.sources.get("src")
    assert found is not None
    now = now_ms()
    event = NewEvent(
        id=_id("evt"), source="src", source_rev=found[1], received_ms=now, event_type="t",
        content_type="application/json", headers={}, body=b"{}", idempotency_key=key,
    )  # fmt: skip
    result = await store.events.ingest(event, idempotency_ttl_s=3600)
    return result.event_id


async def subscription(store: Store, **fields: Any) -> Subscription:
    now = now_ms()
    values: dict[str, Any] = {"url": "https://example.com/hook", "sources": ["src"], **fields}
    sub = Subscription(id=_id("sub"), secret="whsec_x", created_at=now, updated_at=now, **values)
    await store.subscriptions.create(sub)
    return sub


async def fan_out(
    store: Store, sub: Subscription, n: int = 1, keys: list[str] | None = None, due_ms: int = 0
) -> list[str]:
    """``n`` events, each fanned out to ``sub`` (with these FIFO keys); their delivery ids."""
    ids = []
    for i in range(n):
        event_id = await stored_event(store)
        delivery = NewDelivery(
            _id("dlv"), sub.id, DeliveryMode.RELIABLE, due_ms or now_ms(),
            ordering_key=None if keys is None else keys[i],
        )  # fmt: skip
        rev = await store.subscriptions.revision()
        added = await store.deliveries.add(
            [NewDeliveries(event_id, [delivery])], now_ms(), fan_out=True, subs_rev=rev
        )
        assert added.verdicts == [1]
        ids.append(delivery.id)
    return ids


def attempt(ctx: DeliveryContext, outcome: DeliveryStatus, next_at: int | None = None) -> Attempt:
    return Attempt(
        number=ctx.delivery.attempts + 1, trigger=Trigger.SCHEDULED, started_at=now_ms(),
        duration_ms=1.0, status_code=200 if outcome is DeliveryStatus.SUCCEEDED else 500,
        error=None, error_message=None, response_excerpt="", outcome=outcome,
        next_attempt_at=next_at,
    )  # fmt: skip


async def record(
    store: Store,
    ctx: DeliveryContext,
    outcome: DeliveryStatus,
    *,
    next_at: int | None = None,
    failing: FailingUpdate = NO_CHANGE,
    hold_until_ms: int | None = None,
) -> str | None:
    recorded = await store.deliveries.record(
        ctx, attempt(ctx, outcome, next_at), now_ms=now_ms(), disable_reason=None,
        dead_letter=True, failing=failing, failing_limit_ms=60_000,
        failing_reason="failing too long",
        lane=NOTHING if hold_until_ms is None else LaneStep(hold_until_ms=hold_until_ms,
                                                           hold_reason="a test's hold"),
    )  # fmt: skip
    return recorded.disabled


async def many_subscriptions(store: Store, n: int, url: str, sources: Sequence[str]) -> set[str]:
    """``n`` subscriptions written through the store, a thousand calls a round trip."""
    now = now_ms()
    subs = [
        Subscription(
            id=new_id("sub", now),
            secret=_SECRET,
            created_at=now,
            updated_at=now,
            url=f"{url}/s/{i}",
            sources=list(sources),
        )
        for i in range(n)
    ]
    for i in range(0, n, 1000):
        await asyncio.gather(*(store.subscriptions.create(s) for s in subs[i : i + 1000]))
    return {s.id for s in subs}


async def deliveries_by_subscription(redis: aioredis.Redis, event_id: str) -> Counter[str]:
    """How many deliveries of the event each subscription has, read from Redis."""
    ids = (await redis.get(Keys.event_deliveries(event_id)) or b"").decode().split()
    async with redis.pipeline(transaction=False) as pipe:
        for delivery_id in ids:
            pipe.hget(Keys.delivery(delivery_id), "subscription_id")
        owners = await pipe.execute()
    return Counter(o.decode() for o in owners)
