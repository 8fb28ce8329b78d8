"""A lane knows which worker runs its job, and the reconciliation takes it from a dead one."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.domain.clock import now_ms
from relay.domain.lane_limits import LaneLimits
from relay.storage import HOLDER_STALE_MS, Store
from relay.storage.keys import Keys
from tests.storage.helpers import fan_out, subscription


async def state(redis: aioredis.Redis, sub_id: str) -> dict[str, str]:
    raw = await redis.hgetall(Keys.lane(sub_id, "state"))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def running_lane(store: Store, redis: aioredis.Redis, worker: str, beat_ms: int) -> tuple:  # type: ignore[type-arg]
    """A lane whose job ARQ has started on ``worker`` (last heartbeat ``beat_ms``), with one
    attempt in flight under a long lease and one delivery waiting."""
    sub = await subscription(store)
    await fan_out(store, sub, 2)
    job = (await state(redis, sub.id))["job"]
    await redis.set(f"arq:in-progress:{job}", b"1", px=70_000)  # as ARQ marks a started job
    await store.housekeeping.heartbeat(worker, beat_ms)
    now = now_ms()
    claim = await store.lanes.claim(
        sub.id, 1, now, now + 60_000, LaneLimits(16), job_id=job, worker_id=worker
    )
    [ctx] = claim.contexts
    return sub.id, job, ctx.delivery.id


async def test_a_claim_by_the_armed_job_records_its_worker(
    store: Store, redis: aioredis.Redis
) -> None:
    sub_id, _, _ = await running_lane(store, redis, "w1", now_ms())
    assert (await state(redis, sub_id))["holder"] == "w1"
    # A stale job's claim does not make its worker the holder.
    now = now_ms()
    await store.lanes.claim(
        sub_id, 1, now, now + 60_000, LaneLimits(16), job_id="lane:x:0", worker_id="w2"
    )
    assert (await state(redis, sub_id))["holder"] == "w1"


async def test_a_lane_held_by_a_worker_that_stopped_beating_gets_a_fresh_job(
    store: Store, redis: aioredis.Redis, settings
) -> None:
    now = now_ms()
    sub_id, job, in_flight = await running_lane(store, redis, "dead", now - HOLDER_STALE_MS - 1)
    done = await store.lanes.reconcile([sub_id], now, holder_cutoff_ms=now - HOLDER_STALE_MS)
    assert done.taken_over == [sub_id]
    assert done.armed == [sub_id]
    after = await state(redis, sub_id)
    assert after["job"] not in (None, job)
    assert "holder" not in after  # the new job's worker records itself when it claims
    # ARQ will not run the old job again, and the new one is due now.
    assert await redis.exists(f"arq:job:{job}", f"arq:in-progress:{job}") == 0
    assert await redis.zscore(settings.queue_name, job) is None
    assert await redis.zscore(settings.queue_name, after["job"]) is not None
    # The dead worker's attempt is due again at once, not when its lease runs out.
    assert await redis.zcard(Keys.lane(sub_id, "flight")) == 0
    assert await redis.zscore(Keys.lane(sub_id), in_flight) == now
    assert await redis.zcard(Keys.lane(sub_id)) == 2


async def test_a_live_holder_and_a_disabled_takeover_leave_the_lane_alone(
    store: Store, redis: aioredis.Redis
) -> None:
    now = now_ms()
    sub_id, job, in_flight = await running_lane(store, redis, "alive", now)
    live = await store.lanes.reconcile([sub_id], now, holder_cutoff_ms=now - HOLDER_STALE_MS)
    later = now + HOLDER_STALE_MS + 1
    disabled = await store.lanes.reconcile([sub_id], later, holder_cutoff_ms=0)
    assert live.taken_over == live.armed == disabled.taken_over == disabled.armed == []
    assert (await state(redis, sub_id))["job"] == job
    assert await redis.zscore(Keys.lane(sub_id, "flight"), in_flight) is not None
