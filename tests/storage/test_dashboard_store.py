"""What the dashboard keeps in Redis: per-minute outcomes and sessions, both bounded."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from relay.domain.clock import now_ms
from relay.domain.models import DeliveryStatus
from relay.storage import AlreadyRecorded, Store
from relay.storage.keys import Keys
from relay.storage.stats import MINUTE_MS, STATS_TTL_MS
from tests.storage.helpers import fan_out, record, subscription


async def test_outcomes_are_counted_once_per_minute_under_a_ttl(
    store: Store, redis: aioredis.Redis
) -> None:
    sub = await subscription(store)
    first, second = await fan_out(store, sub, 2)
    ctx = await store.deliveries.context(first)
    assert ctx is not None
    await record(store, ctx, DeliveryStatus.FAILED, next_at=now_ms())
    with pytest.raises(AlreadyRecorded):  # the same attempt again, from a stale context
        await record(store, ctx, DeliveryStatus.FAILED, next_at=now_ms())
    ctx = await store.deliveries.context(second)
    assert ctx is not None
    await record(store, ctx, DeliveryStatus.SUCCEEDED)
    now = now_ms()
    minutes = await store.stats.minutes(now, count=3)
    assert [m.minute_ms for m in minutes] == [
        (now // MINUTE_MS + i) * MINUTE_MS for i in (-2, -1, 0)
    ]
    # (Accepted events are counted from real ids, which these helpers do not make: the
    # Overview's test in tests/ui ingests through the API.)
    total = (sum(m.succeeded for m in minutes), sum(m.failed for m in minutes),
             sum(m.dead for m in minutes))  # fmt: skip
    assert total == (1, 1, 0)
    ttl = await redis.pttl(Keys.minute_stats(now // MINUTE_MS))
    assert 0 < ttl <= STATS_TTL_MS


async def test_sessions_expire_and_can_be_ended(store: Store, redis: aioredis.Redis) -> None:
    await store.sessions.create("d" * 64, b'{"csrf": "x"}', 60_000)
    assert await store.sessions.get("d" * 64) == b'{"csrf": "x"}'
    assert 0 < await redis.pttl(Keys.ui_session("d" * 64)) <= 60_000
    await store.sessions.delete("d" * 64)
    assert await store.sessions.get("d" * 64) is None
