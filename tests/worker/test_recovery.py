"""Crash windows: whatever dies between two steps, the recovery cron finishes the job."""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis

from config.settings import Settings
from relay.delivery.fanout import SubscriptionCache, fan_out, stored_event
from relay.delivery.ingest import Ingestor
from relay.devtools.receiver import Receiver
from relay.domain.clock import now_ms
from relay.domain.lane_limits import LaneLimits
from relay.storage import Store
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription
from workers.deps import WorkerDeps
from workers.recovery import recover


async def accept_without_fanout(store: Store, settings: Settings) -> str:
    """What the API has done when it dies right after its 202: the event is stored, nothing else."""
    outcome = await Ingestor(store, settings).ingest(
        "github", {"x-github-event": "push"}, b'{"n":1}', "application/json"
    )
    event_id: str = outcome.result.event_id  # type: ignore[union-attr]
    return event_id


async def fan_out_once(store: Store, event_id: str) -> list[object]:
    event = await stored_event(store, event_id)
    assert event is not None
    return list(await fan_out(store, SubscriptionCache(store), [event]))


async def fanned_out_but_job_lost(
    api: httpx.AsyncClient, store: Store, settings: Settings, receiver: Receiver
) -> tuple[str, str, str]:
    """Fan-out committed and armed the lane, then its ARQ job was lost (a Redis restart
    that lost the last second of writes, a queue flushed by hand).

    Returns the event, its one delivery, and that delivery's subscription.
    """
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    event_id = await accept_without_fanout(store, settings)
    await fan_out_once(store, event_id)
    [delivery_id] = await store.events.delivery_ids(event_id)
    redis = aioredis.Redis.from_url(settings.require_redis_url())
    await redis.delete(settings.queue_name, *await redis.keys("arq:job:*"))
    await redis.aclose()
    return event_id, delivery_id, sub["id"]


async def test_unfanned_event_is_fanned_out_by_the_worker(
    api: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    run_worker: WorkerRun,
    receiver: Receiver,
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url)
    event_id = await accept_without_fanout(store, settings)
    assert (await store.events.get(event_id)).fanned_out is False  # type: ignore[union-attr]

    await run_worker()  # the recovery cron runs at worker start-up

    [got] = receiver.wait_for(1)
    assert got.headers["webhook-id"] == event_id
    assert (await store.events.get(event_id)).fanned_out is True  # type: ignore[union-attr]
    event = (await api.get(f"/api/events/{event_id}", headers=AUTH)).json()
    assert event["fanned_out"] is True
    assert [d["status"] for d in event["deliveries"]] == ["succeeded"]


async def test_recovery_waits_for_the_grace_period(
    api: httpx.AsyncClient, make_settings, store: Store, receiver: Receiver
) -> None:
    settings = make_settings(fanout_grace_s=30)
    await create_source(api)
    await create_subscription(api, receiver.url)
    event_id = await accept_without_fanout(store, settings)
    # Only what recovery reads: the store and the settings (nothing is due to be queued).
    cache = SubscriptionCache(store)
    deps = WorkerDeps(settings, store, None, None, cache, "test")  # type: ignore[arg-type]
    assert await recover({"deps": deps}) == {
        "fanned_out": 0, "rearmed": 0, "trimmed": 0, "ops": 0, "listeners_removed": 0,
    }  # fmt: skip
    assert (await store.events.get(event_id)).fanned_out is False  # type: ignore[union-attr]


async def test_fanout_twice_creates_deliveries_once(
    api: httpx.AsyncClient, store: Store, settings: Settings, receiver: Receiver
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url)
    event_id = await accept_without_fanout(store, settings)
    [first] = await fan_out_once(store, event_id)
    [second] = await fan_out_once(store, event_id)
    assert first is not None
    assert len(first.deliveries) == 1  # type: ignore[attr-defined]
    assert second is None
    assert len(await store.events.delivery_ids(event_id)) == 1


async def test_delivery_whose_job_was_lost_is_requeued(
    api: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    run_worker: WorkerRun,
    receiver: Receiver,
) -> None:
    _, delivery_id, _ = await fanned_out_but_job_lost(api, store, settings, receiver)

    await run_worker()  # the recovery cron runs at start-up and arms the lane again

    [got] = receiver.wait_for(1)
    assert got.headers["x-relay-attempt"] == "1"
    assert (await store.deliveries.get(delivery_id)).status == "succeeded"  # type: ignore[union-attr]


async def test_attempt_interrupted_by_a_crash_runs_again_once_its_lease_expires(
    api: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    run_worker: WorkerRun,
    receiver: Receiver,
) -> None:
    _, delivery_id, sub_id = await fanned_out_but_job_lost(api, store, settings, receiver)
    # A worker claimed attempt 1 and died mid-request; its lease ran out a moment ago.
    now = now_ms()
    taken = await store.lanes.claim(sub_id, 10, now, now - 1, LaneLimits(16))
    assert [c.delivery.id for c in taken.contexts] == [delivery_id]

    await run_worker()

    [got] = receiver.wait_for(1)
    assert got.headers["x-relay-attempt"] == "1"
    delivery = await store.deliveries.get(delivery_id)
    assert delivery is not None
    assert delivery.status == "succeeded"
    assert delivery.attempts == 1


async def test_live_claim_is_not_taken_twice(
    api: httpx.AsyncClient, store: Store, settings: Settings, receiver: Receiver
) -> None:
    _, delivery_id, sub_id = await fanned_out_but_job_lost(api, store, settings, receiver)
    now = now_ms()
    first = await store.lanes.claim(sub_id, 10, now, now + 60_000, LaneLimits(16))
    again = await store.lanes.claim(sub_id, 10, now, now + 60_000, LaneLimits(16))
    assert [c.delivery.id for c in first.contexts] == [delivery_id]
    assert again.contexts == []
