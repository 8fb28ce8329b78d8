"""Storage facts the API does not show: TTLs and the failing clock."""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from relay.domain import ops
from relay.domain.clock import now_ms
from relay.domain.failing import FailingUpdate
from relay.domain.ids import new_id
from relay.domain.lane_limits import LaneLimits
from relay.domain.models import DeliveryMode, DeliveryStatus, SourceIn
from relay.storage import HOLDER_STALE_MS, NewDeliveries, NewDelivery, NewEvent, Store
from relay.storage.keys import Keys
from tests.storage.helpers import fan_out, record, stored_event, subscription


async def test_idempotency_keys_expire(store: Store, redis: aioredis.Redis) -> None:
    await stored_event(store, key="d-1")
    ttl = await redis.ttl(Keys.idempotency("src", "d-1"))
    assert 0 < ttl <= 3600


async def test_the_failing_clock_lives_under_a_ttl_and_a_success_resets_it(
    store: Store, redis: aioredis.Redis
) -> None:
    sub = await subscription(store)
    first, second = await fan_out(store, sub, 2)
    now = now_ms()
    ctx = await store.deliveries.context(first)
    assert ctx is not None
    assert (
        await record(store, ctx, DeliveryStatus.DEAD, failing=FailingUpdate("count", now - 1))
        is None
    )
    assert await redis.get(Keys.sub_failing(sub.id)) == str(now - 1).encode()
    assert 0 < await redis.pttl(Keys.sub_failing(sub.id)) <= 60_000
    ctx = await store.deliveries.context(second)
    assert ctx is not None
    assert (
        await record(store, ctx, DeliveryStatus.SUCCEEDED, failing=FailingUpdate("reset")) is None
    )
    assert await redis.exists(Keys.sub_failing(sub.id)) == 0


async def test_a_disable_decided_on_a_stale_clock_does_not_happen(
    store: Store, redis: aioredis.Redis
) -> None:
    sub = await subscription(store)
    [delivery_id] = await fan_out(store, sub)
    now = now_ms()
    await redis.set(Keys.sub_failing(sub.id), now - 100_000)
    ctx = await store.deliveries.context(delivery_id)
    assert ctx is not None
    assert ctx.failing_since == now - 100_000
    # A success elsewhere resets the clock between reading it and recording this failure.
    await redis.delete(Keys.sub_failing(sub.id))
    disabled = await record(
        store, ctx, DeliveryStatus.DEAD, failing=FailingUpdate("count", now - 100_000, True)
    )
    assert disabled is None
    got = await store.subscriptions.get(sub.id)
    assert got is not None
    assert got.enabled


async def test_the_rule_disables_on_a_clock_that_did_not_move(store: Store) -> None:
    sub = await subscription(store)
    [delivery_id] = await fan_out(store, sub)
    ctx = await store.deliveries.context(delivery_id)
    assert ctx is not None
    update = FailingUpdate("count", now_ms() - 100_000, True)
    assert await record(store, ctx, DeliveryStatus.DEAD, failing=update) == "failing too long"
    got = await store.subscriptions.get(sub.id)
    assert got is not None
    assert not got.enabled
    assert got.disabled_reason == "failing too long"


async def test_an_event_no_subscription_can_want_is_fanned_out_as_it_is_stored(
    store: Store, redis: aioredis.Redis
) -> None:
    """No subscription for its source or for every source: no fan-out step is needed, and
    none is left for the recovery cron; with one, the event waits for fan-out."""

    async def waits_for_fan_out() -> bool:
        event_id = await stored_event(store)
        event = await store.events.get(event_id)
        assert event is not None
        waiting = await redis.zscore(Keys.unfanned, event_id) is not None
        assert event.fanned_out is not waiting
        return waiting

    assert not await waits_for_fan_out()
    await subscription(store, sources=["other"])
    assert not await waits_for_fan_out()
    every = await subscription(store, sources=["*"])
    assert await waits_for_fan_out()
    await store.subscriptions.delete(every, now_ms())
    await subscription(store, sources=["src"])
    assert await waits_for_fan_out()


async def test_a_pending_delivery_stores_only_what_differs_from_the_defaults(
    store: Store, redis: aioredis.Redis
) -> None:
    """Bytes per pending delivery are a target (benchmarks/throughput.py): a new delivery's
    hash leaves out its retry base, updated_at and a reliable mode, and every reader and
    transition takes the defaults for them."""
    sub = await subscription(store)
    [first, second] = await fan_out(store, sub, 2)
    stored = await redis.hgetall(Keys.delivery(first))
    assert not {b"retry_base", b"updated_at", b"mode"} & set(stored)
    # Kept for workers of the version before, which check it when they record an attempt.
    assert stored[b"attempts"] == b"0"
    delivery = await store.deliveries.get(first)
    assert delivery is not None
    assert (delivery.attempts, delivery.mode.value) == (0, "reliable")
    assert delivery.updated_at == delivery.created_at == int(stored[b"created_at"])

    # The first attempt is recorded, and counted.
    [ctx] = (
        await store.lanes.claim(sub.id, 1, now_ms(), now_ms() + 60_000, LaneLimits(16))
    ).contexts
    assert ctx.delivery.id == first
    await record(store, ctx, DeliveryStatus.SUCCEEDED)
    assert await redis.hget(Keys.delivery(first), "attempts") == b"1"
    # A manual retry before any attempt starts its retry window at 0 attempts.
    assert await store.deliveries.reopen(second, sub.id, now_ms(), only_dead=False) == (0, 1)


async def test_an_event_keeps_its_delivery_ids_in_one_string_and_reads_an_old_list(
    store: Store, redis: aioredis.Redis
) -> None:
    sub = await subscription(store)
    [delivery_id] = await fan_out(store, sub)
    event_id = (await redis.hget(Keys.delivery(delivery_id), "event_id") or b"").decode()
    assert await redis.type(Keys.event_deliveries(event_id)) == b"string"
    assert await store.events.delivery_ids(event_id) == [delivery_id]

    # An event fanned out by an earlier version holds a list: it is read, and a replay
    # appends to it.
    old = "dlv_0000000000000000000000000"
    await redis.delete(Keys.event_deliveries(event_id))
    await redis.rpush(Keys.event_deliveries(event_id), old, delivery_id)
    replayed = NewDelivery("dlv_zzzzzzzzzzzzzzzzzzzzzzzzzz", sub.id, DeliveryMode.RELIABLE, 0)
    rev = await store.subscriptions.revision()
    added = await store.deliveries.add(
        [NewDeliveries(event_id, [replayed])], now_ms(), fan_out=False, subs_rev=rev
    )
    assert added.verdicts == [1]
    assert await store.events.delivery_ids(event_id) == [old, delivery_id, replayed.id]


async def test_fan_out_hands_back_what_an_inline_delivery_needs_to_be_attempted(
    store: Store, redis: aioredis.Redis
) -> None:
    """A best-effort delivery the caller attempts at once comes back from the fan-out step
    with its context (event, body, subscription, failing clock): no read-back round trip.
    One left to its lane does not."""
    sub = await subscription(store, mode="best_effort")
    event_id = await stored_event(store)
    await redis.set(Keys.sub_failing(sub.id), "1234")
    inline = NewDelivery("dlv_a", sub.id, DeliveryMode.BEST_EFFORT, now_ms() + 60_000, inline=True)
    queued = NewDelivery("dlv_b", sub.id, DeliveryMode.RELIABLE, now_ms())
    rev = await store.subscriptions.revision()
    added = await store.deliveries.add(
        [NewDeliveries(event_id, [inline, queued])], now_ms(), fan_out=True, subs_rev=rev
    )
    assert added.verdicts == [1]
    [ctx] = added.inline
    read_back = await store.deliveries.context("dlv_a")
    assert ctx == read_back
    assert (ctx.delivery.id, ctx.delivery.status.value, ctx.event.id) == (
        "dlv_a", "delivering", event_id,
    )  # fmt: skip
    assert (ctx.body, ctx.failing_since, ctx.subscription) == (b"{}", 1234, sub)


async def test_a_stopping_worker_leaves_the_fair_share_but_keeps_its_lanes(
    store: Store,
) -> None:
    """Workers count each other for their share of the busy lanes; one that stops taking
    jobs (SIGTERM: it finishes what it runs) is not counted there, yet stays alive for the
    recovery cron, which would otherwise take its lanes from under it."""
    now = now_ms()
    await store.housekeeping.heartbeat("w1", now)
    await store.housekeeping.heartbeat("w2", now)
    assert (await store.housekeeping.lane_load(now))[1] == 2
    await store.housekeeping.heartbeat("w2", now + 1, picking=False)
    assert (await store.housekeeping.lane_load(now))[1] == 1
    assert await store.housekeeping.live_workers(now) == 2
    await store.housekeeping.forget_worker("w1")
    assert (await store.housekeeping.lane_load(now))[1] == 0
    await store.housekeeping.heartbeat("w3", now)
    assert (await store.housekeeping.lane_load(now))[1] == 1
    # Gone quiet: not counted once its last beat is older than a holder may be.
    assert (await store.housekeeping.lane_load(now + HOLDER_STALE_MS + 1))[1] == 0


async def test_an_event_that_reaches_redis_after_its_deadline_stores_nothing(
    store: Store, redis: aioredis.Redis
) -> None:
    """A stalled Redis runs what it had queued once it resumes: past the request's deadline
    (Redis's clock), the ingest script refuses instead, so the sender's 503 was true."""
    await store.sources.put("src", SourceIn(), now_ms())
    found = await store.sources.get("src")
    assert found is not None
    redis_now = await store.housekeeping.redis_time_ms()

    def event(key: str) -> NewEvent:
        return NewEvent(
            id=new_id("evt", now_ms()), source="src", source_rev=found[1], received_ms=now_ms(),
            event_type="t", content_type="application/json", headers={}, body=b"{}",
            idempotency_key=key,
        )  # fmt: skip

    late = await store.events.ingest(event("late"), 3600, deadline_ms=redis_now - 1)
    assert late.status == "late"
    assert await redis.exists(Keys.idempotency("src", "late"), Keys.event(late.event_id)) == 0
    assert await redis.zcard(Keys.events) == 0
    in_time = await store.events.ingest(event("in-time"), 3600, deadline_ms=redis_now + 60_000)
    assert in_time.status == "accepted"
    assert await redis.zcard(Keys.events) == 1


async def test_an_eviction_policy_is_reported_once_per_change(
    store: Store, redis: aioredis.Redis
) -> None:
    """Every process watches the policy; the script reports each change once for all."""
    types = (ops.EVICTION_POLICY_UNSAFE, ops.EVICTION_POLICY_RESTORED)

    async def report(policy: str) -> list[str]:
        return await store.ops.report_eviction_policy(
            policy, "noeviction", ops.OPS_SOURCE, types, now_ms()
        )

    assert await report("noeviction") == []  # nothing was reported: nothing to restore
    [unsafe] = await report("allkeys-lru")
    assert await report("allkeys-lru") == []  # a second process, the same change
    [other] = await report("volatile-lru")
    [restored] = await report("noeviction")
    assert await report("noeviction") == []
    bodies = [orjson.loads(await redis.get(Keys.event_body(i))) for i in (unsafe, other, restored)]
    assert [(b["type"], b["data"]["maxmemory_policy"]) for b in bodies] == [
        (ops.EVICTION_POLICY_UNSAFE, "allkeys-lru"),
        (ops.EVICTION_POLICY_UNSAFE, "volatile-lru"),
        (ops.EVICTION_POLICY_RESTORED, "noeviction"),
    ]
    # Each waits for fan-out to the subscriptions of _relay.ops, like every operational event.
    assert await redis.zscore(Keys.unfanned, unsafe) is not None
