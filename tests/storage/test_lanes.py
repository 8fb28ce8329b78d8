"""Lanes in Redis: claims within limits, FIFO heads, arming, yielding and the upgrade."""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from config.settings import Settings
from relay.delivery import queue
from relay.domain import lane_limits
from relay.domain.clock import now_ms
from relay.domain.lane_limits import LaneLimits
from relay.domain.models import DeliveryStatus, Ordering, Subscription
from relay.storage import Store
from relay.storage.keys import Keys
from tests.conftest import WorkerRun
from tests.storage.helpers import fan_out, record, subscription


async def claim(store: Store, sub_id: str, want: int = 100, cap: int = 16):  # type: ignore[no-untyped-def]
    now = now_ms()
    # As the lane job does: the limits resolved from the stored subscription.
    found = await store.subscriptions.get(sub_id)
    sub = found if isinstance(found, Subscription) else None
    limits = lane_limits.resolve(sub, default_concurrency=cap)
    return await store.lanes.claim(sub_id, want, now, now + 60_000, limits)


async def armed_job(redis: aioredis.Redis, sub_id: str) -> str | None:
    job = await redis.hget(Keys.lane(sub_id, "state"), "job")
    return None if job is None else job.decode()


async def test_fan_out_arms_one_job_whose_record_arq_reads(
    store: Store, redis: aioredis.Redis, settings: Settings
) -> None:
    sub = await subscription(store)
    await fan_out(store, sub, 3)
    job = await armed_job(redis, sub.id)
    assert job == f"lane:{sub.id}:1"  # three deliveries, one wake-up
    assert await redis.zcard(settings.queue_name) == 1
    record_ = orjson.loads(await redis.get(f"arq:job:{job}"))
    assert record_["f"] == "lane"
    assert record_["a"] == [sub.id]
    # ARQ refuses a second job with that id, as it does for its own enqueue_job.
    pool: ArqRedis = queue.connect(settings)
    try:
        assert await pool.enqueue_job("lane", sub.id, _job_id=job) is None
    finally:
        await pool.aclose()


async def test_arqs_worker_runs_a_job_armed_from_lua(
    store: Store, settings: Settings, run_worker: WorkerRun, redis: aioredis.Redis
) -> None:
    sub = await subscription(store, url="http://127.0.0.1:9/")  # refused: fails, then retries
    [delivery_id] = await fan_out(store, sub)
    await run_worker(
        settings.model_copy(update={"retry": settings.retry.model_copy(update={"max_attempts": 1})})
    )
    delivery = await store.deliveries.get(delivery_id)
    assert delivery is not None
    assert delivery.status is DeliveryStatus.DEAD
    assert delivery.attempts == 1
    assert await armed_job(redis, sub.id) is None  # idle again
    assert await redis.sismember(Keys.lanes, sub.id) == 0


async def test_claims_respect_max_concurrency_across_claimers(store: Store) -> None:
    sub = await subscription(store, max_concurrency=3)
    await fan_out(store, sub, 5)
    first = await claim(store, sub.id)
    second = await claim(store, sub.id)
    assert len(first.contexts) == 3
    assert second.status == "full"
    assert second.contexts == []
    await record(store, first.contexts[0], DeliveryStatus.SUCCEEDED)
    third = await claim(store, sub.id)
    assert len(third.contexts) == 1


async def test_claims_are_in_due_order_then_creation_order(store: Store) -> None:
    sub = await subscription(store)
    now = now_ms()
    late = await fan_out(store, sub, 1, due_ms=now - 10)
    early = await fan_out(store, sub, 2, due_ms=now - 20)
    got = await claim(store, sub.id)
    assert [c.delivery.id for c in got.contexts] == [*early, *late]


async def test_the_rate_limit_hands_out_tokens_not_the_whole_lane(store: Store) -> None:
    sub = await subscription(store, rate_limit=20)  # a bucket of 2 (a tenth of a second)
    await fan_out(store, sub, 5)
    first = await claim(store, sub.id)
    assert len(first.contexts) == 2
    second = await claim(store, sub.id)
    assert second.status == "rate"
    assert second.next_due_ms is not None
    assert 0 < second.next_due_ms - now_ms() <= 60


async def test_a_paused_lane_hands_out_nothing_and_resume_arms_it(
    store: Store, redis: aioredis.Redis
) -> None:
    sub = await subscription(store)
    await fan_out(store, sub, 2)
    assert await store.subscriptions.set_paused(sub.id, True, now_ms())
    assert (await claim(store, sub.id)).status == "paused"
    job = await armed_job(redis, sub.id)
    assert await store.lanes.yield_(sub.id, job or "", now_ms(), exhausted=False) == "idle"
    assert await armed_job(redis, sub.id) is None
    assert await store.subscriptions.set_paused(sub.id, False, now_ms())
    assert await armed_job(redis, sub.id) is not None
    assert len((await claim(store, sub.id)).contexts) == 2


async def test_fifo_sends_one_delivery_per_key_at_a_time(store: Store) -> None:
    sub = await subscription(store, ordering=Ordering(mode="fifo", key="$.k"))
    a1, b1, a2, a3 = await fan_out(store, sub, 4, keys=["a", "b", "a", "a"])
    first = await claim(store, sub.id)
    assert [c.delivery.id for c in first.contexts] == [a1, b1]
    by_id = {c.delivery.id: c for c in first.contexts}
    # a1 fails and waits for its retry: a2 and a3 wait behind it.
    await record(store, by_id[a1], DeliveryStatus.FAILED, next_at=now_ms() - 1)
    again = await claim(store, sub.id)
    assert [c.delivery.id for c in again.contexts] == [a1]
    await record(store, again.contexts[0], DeliveryStatus.DEAD)  # dead lets the key go on
    nxt = await claim(store, sub.id)
    assert [c.delivery.id for c in nxt.contexts] == [a2]
    await record(store, nxt.contexts[0], DeliveryStatus.SUCCEEDED)
    assert [c.delivery.id for c in (await claim(store, sub.id)).contexts] == [a3]


async def test_an_attempt_whose_lease_ran_out_is_handed_out_again(store: Store) -> None:
    sub = await subscription(store)
    [delivery_id] = await fan_out(store, sub)
    now = now_ms()
    taken = await store.lanes.claim(sub.id, 10, now, now - 1, LaneLimits(16))  # its worker died
    assert [c.delivery.id for c in taken.contexts] == [delivery_id]
    again = await claim(store, sub.id)
    assert [c.delivery.id for c in again.contexts] == [delivery_id]
    assert again.contexts[0].delivery.attempts == 0  # the same attempt, made again


async def test_yield_rearms_for_the_next_due_time_with_a_new_job(
    store: Store, redis: aioredis.Redis, settings: Settings
) -> None:
    sub = await subscription(store)
    [delivery_id] = await fan_out(store, sub)
    job = await armed_job(redis, sub.id)
    [ctx] = (await claim(store, sub.id)).contexts
    later = now_ms() + 30_000
    await record(store, ctx, DeliveryStatus.FAILED, next_at=later)
    assert (
        await store.lanes.yield_(sub.id, "someone-else", now_ms(), exhausted=False) == "not_owner"
    )
    assert await store.lanes.yield_(sub.id, job or "", now_ms(), exhausted=False) == "rearmed"
    new_job = await armed_job(redis, sub.id)
    assert new_job not in (None, job)
    assert await redis.zscore(settings.queue_name, new_job) == later
    assert delivery_id


async def test_a_hold_keeps_the_lane_shut_until_it_ends(store: Store) -> None:
    sub = await subscription(store)
    await fan_out(store, sub, 2)
    [first] = (await claim(store, sub.id, want=1)).contexts
    hold = now_ms() + 60_000
    await record(store, first, DeliveryStatus.FAILED, next_at=now_ms(), hold_until_ms=hold)
    got = await claim(store, sub.id)
    assert got.status == "hold"
    assert got.next_due_ms == hold


async def test_reconciliation_arms_a_lane_whose_job_was_lost(
    store: Store, redis: aioredis.Redis
) -> None:
    sub = await subscription(store)
    await fan_out(store, sub)
    job = await armed_job(redis, sub.id)
    await redis.delete(f"arq:job:{job}")  # lost with a Redis restart
    assert await store.lanes.arm_idle([sub.id], now_ms()) == [sub.id]
    assert await armed_job(redis, sub.id) not in (None, job)
    assert await store.lanes.arm_idle([sub.id], now_ms()) == []  # its job exists now


async def test_the_upgrade_moves_the_old_due_index_and_parked_sets_into_lanes(
    store: Store, redis: aioredis.Redis
) -> None:
    sub = await subscription(store)
    pending, failed, parked, done = await fan_out(store, sub, 4)
    # What the version before lanes left: a global due index and a paused sub's parked set.
    await redis.delete(Keys.lane(sub.id), Keys.lane(sub.id, "state"), Keys.lanes)
    now = now_ms()
    await redis.hset(Keys.delivery(failed), "status", "failed")
    await redis.hset(Keys.delivery(done), "status", "succeeded")
    await redis.zadd(Keys.legacy_due, {pending: now, failed: now + 5_000, done: now})
    await redis.zadd(Keys.legacy_parked(sub.id), {parked: now - 1})
    assert await store.lanes.migrate_legacy(now) == 3
    assert await redis.exists(Keys.legacy_due, Keys.legacy_parked(sub.id)) == 0
    lane = await redis.zrange(Keys.lane(sub.id), 0, -1, withscores=True)
    assert lane == [
        (parked.encode(), now - 1),
        (pending.encode(), now),
        (failed.encode(), now + 5_000),
    ]
    assert await armed_job(redis, sub.id) is not None
    assert await store.lanes.migrate_legacy(now) == 0  # done once


async def test_reconciliation_waits_for_an_in_flight_lease_to_run_out(
    store: Store, redis: aioredis.Redis
) -> None:
    sub = await subscription(store)
    await fan_out(store, sub)
    now = now_ms()
    [ctx] = (await store.lanes.claim(sub.id, 10, now, now + 60_000, LaneLimits(16))).contexts
    await redis.hdel(Keys.lane(sub.id, "state"), "job")  # its job ended; the attempt goes on
    assert await store.lanes.arm_idle([sub.id], now) == []  # a live lease needs no job
    assert await store.lanes.arm_idle([sub.id], now + 60_001) == [sub.id]  # its holder died
    assert ctx.delivery.attempts == 0


async def test_a_started_job_leaves_the_head_of_the_queue_and_new_work_leaves_it_there(
    store: Store, redis: aioredis.Redis, settings: Settings
) -> None:
    slow, other = await subscription(store), await subscription(store)
    await fan_out(store, slow)
    job = await armed_job(redis, slow.id)
    assert job is not None
    lease_until = now_ms() + 70_000
    assert await store.lanes.started(slow.id, job, lease_until)
    await fan_out(store, slow)  # more work for the running job: no new job, no pull-back
    await fan_out(store, other)
    # A worker reading only the first due entry finds the other lane's job, not the running one.
    head = await redis.zrangebyscore(settings.queue_name, "-inf", now_ms(), start=0, num=1)
    assert head == [f"lane:{other.id}:1".encode()]
    assert await redis.zscore(settings.queue_name, job) == lease_until
    assert await armed_job(redis, slow.id) == job
    assert not await store.lanes.started(slow.id, "lane:gone:1", lease_until)  # not its job


async def test_reconciliation_makes_a_started_job_due_again_once_nobody_runs_it(
    store: Store, redis: aioredis.Redis, settings: Settings
) -> None:
    sub = await subscription(store)
    await fan_out(store, sub)
    job = await armed_job(redis, sub.id)
    assert job is not None
    await redis.set(f"arq:in-progress:{job}", b"1")  # as ARQ marks a job it starts
    await store.lanes.started(sub.id, job, now_ms() + 70_000)
    await store.lanes.arm_idle([sub.id], now_ms())
    assert await redis.zscore(settings.queue_name, job) > now_ms()  # running: left alone
    await redis.delete(f"arq:in-progress:{job}")  # its worker died; the mark is gone
    now = now_ms()
    assert await store.lanes.arm_idle([sub.id], now) == [sub.id]
    assert await armed_job(redis, sub.id) == job  # the same job, due now
    assert await redis.zscore(settings.queue_name, job) == now
