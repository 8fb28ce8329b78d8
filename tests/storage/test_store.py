"""Storage facts the API does not show: TTLs, parking, and the failing clock."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.domain.clock import now_ms
from relay.domain.failing import FailingUpdate
from relay.domain.models import (
    Attempt,
    DeliveryMode,
    DeliveryStatus,
    SourceIn,
    Subscription,
    Trigger,
)
from relay.storage import NewDelivery, NewEvent, Store
from relay.storage.keys import Keys


async def stored_event(store: Store, key: str | None = None) -> str:
    await store.sources.put("src", SourceIn(), now_ms())
    found = await store.sources.get("src")
    assert found is not None
    now = now_ms()
    event = NewEvent(
        id=f"evt_{now}", source="src", source_rev=found[1], received_ms=now, event_type="t",
        content_type="application/json", headers={}, body=b"{}", idempotency_key=key,
    )  # fmt: skip
    result = await store.events.ingest(event, idempotency_ttl_s=3600)
    return result.event_id


async def subscription(store: Store) -> Subscription:
    now = now_ms()
    sub = Subscription(
        id=f"sub_{now}", secret="whsec_x", created_at=now, updated_at=now,
        url="https://example.com/hook", sources=["src"],
    )  # fmt: skip
    await store.subscriptions.create(sub)
    return sub


async def deliveries_of_one_event(store: Store, n: int = 1) -> tuple[Subscription, list[str]]:
    """A subscription and ``n`` fanned-out deliveries to it."""
    event_id = await stored_event(store)
    sub = await subscription(store)
    now = now_ms()
    ids = [f"dlv_{now}{i}" for i in range(n)]
    deliveries = [NewDelivery(i, sub.id, DeliveryMode.RELIABLE, now) for i in ids]
    assert await store.deliveries.add(event_id, now, deliveries, fan_out=True)
    return sub, ids


def failed_attempt(now: int, outcome: DeliveryStatus) -> Attempt:
    return Attempt(
        number=1, trigger=Trigger.SCHEDULED, started_at=now, duration_ms=1.0, status_code=500,
        error=None, error_message=None, response_excerpt="", outcome=outcome,
        next_attempt_at=None,
    )  # fmt: skip


async def test_idempotency_keys_expire(store: Store, redis: aioredis.Redis) -> None:
    await stored_event(store, key="d-1")
    ttl = await redis.ttl(Keys.idempotency("src", "d-1"))
    assert 0 < ttl <= 3600


async def test_a_paused_subscription_parks_its_deliveries_and_delete_releases_them(
    store: Store, redis: aioredis.Redis
) -> None:
    sub, [delivery_id] = await deliveries_of_one_event(store)
    now = now_ms()
    assert await store.subscriptions.set_paused(sub.id, True) == []
    claim = await store.deliveries.claim(delivery_id, sub.id, 1, now, now + 1000)
    assert claim == "paused"
    assert await redis.zcard(Keys.paused(sub.id)) == 1
    assert await redis.zscore(Keys.due, delivery_id) is None
    await store.subscriptions.delete(sub)
    assert await redis.exists(Keys.paused(sub.id)) == 0
    assert await redis.zscore(Keys.due, delivery_id) is not None


async def test_the_failing_clock_lives_under_a_ttl_and_a_success_resets_it(
    store: Store, redis: aioredis.Redis
) -> None:
    sub, ids = await deliveries_of_one_event(store, 2)
    now = now_ms()

    async def record(
        delivery_id: str, status: DeliveryStatus, failing: FailingUpdate
    ) -> str | None:
        ctx = await store.deliveries.context(delivery_id)
        assert ctx is not None
        return await store.deliveries.record(
            ctx, failed_attempt(now, status), now_ms=now, disable_reason=None,
            dead_letter=True, failing=failing,
            failing_limit_ms=60_000, failing_reason="failing too long",
        )  # fmt: skip

    assert await record(ids[0], DeliveryStatus.DEAD, FailingUpdate("count", now - 1, False)) is None
    assert await redis.get(Keys.sub_failing(sub.id)) == str(now - 1).encode()
    assert 0 < await redis.pttl(Keys.sub_failing(sub.id)) <= 60_000
    assert await record(ids[1], DeliveryStatus.SUCCEEDED, FailingUpdate("reset")) is None
    assert await redis.exists(Keys.sub_failing(sub.id)) == 0


async def test_a_disable_decided_on_a_stale_clock_does_not_happen(
    store: Store, redis: aioredis.Redis
) -> None:
    sub, [delivery_id] = await deliveries_of_one_event(store)
    now = now_ms()
    await redis.set(Keys.sub_failing(sub.id), now - 100_000)
    ctx = await store.deliveries.context(delivery_id)
    assert ctx is not None
    assert ctx.failing_since == now - 100_000
    # A success elsewhere resets the clock between reading it and recording this failure.
    await redis.delete(Keys.sub_failing(sub.id))
    disabled = await store.deliveries.record(
        ctx, failed_attempt(now, DeliveryStatus.DEAD), now_ms=now, disable_reason=None,
        dead_letter=True,
        failing=FailingUpdate("count", now - 100_000, True), failing_limit_ms=60_000,
        failing_reason="failing too long",
    )  # fmt: skip
    assert disabled is None
    got = await store.subscriptions.get(sub.id)
    assert got is not None
    assert got.enabled
