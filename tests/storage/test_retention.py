"""Retention: records expire on their own; indexes are trimmed by range, never by scan."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from relay.api.app import create_app
from relay.devtools.receiver import Receiver, Reply
from relay.domain.clock import now_ms
from relay.storage.keys import Keys
from tests.conftest import (
    AUTH,
    SHORT_LIVED,
    WorkerRun,
    create_source,
    create_subscription,
    get,
    ingest,
    running_app,
    store_for,
)


async def test_retention_expires_records_and_trims_indexes(
    make_settings, redis: aioredis.Redis, run_worker: WorkerRun, receiver: Receiver
) -> None:
    settings = make_settings(retention_days=1.5 / 86400, retry=SHORT_LIVED)  # 1.5 s
    async with running_app(create_app(settings)) as api:
        await create_source(api)
        await create_subscription(api, receiver.url)
        event_id = await ingest(api)
        await run_worker(settings)
        [delivery_id] = await store_for(redis, settings).events.delivery_ids(event_id)
        keys = [Keys.event(event_id), Keys.event_body(event_id), Keys.event_deliveries(event_id)]
        keys += [Keys.delivery(delivery_id), Keys.attempts(delivery_id)]
        for key in keys:
            assert 0 < await redis.pttl(key) <= 1500
        await asyncio.sleep(1.6)
        assert await redis.exists(*keys) == 0
        assert (await api.get(f"/api/events/{event_id}", headers=AUTH)).status_code == 404
        store = store_for(redis, settings)
        assert await store.housekeeping.trim_indexes(now_ms()) >= 3
        for index in (Keys.events, Keys.source_events("github"), Keys.deliveries):
            assert await redis.zcard(index) == 0
        assert (await get(api, "/api/events"))["data"] == []


async def test_retention_trims_indexes_of_deleted_sources_and_subscriptions(
    make_settings, redis: aioredis.Redis, run_worker: WorkerRun, receiver: Receiver
) -> None:
    # 2 s: long enough that the worker's start-up trim, on a busy machine, finds it fresh.
    settings = make_settings(retention_days=2 / 86400, retry=SHORT_LIVED)
    async with running_app(create_app(settings)) as api:
        await create_source(api, "gone")
        sub = await create_subscription(api, receiver.url, sources=["gone"])
        receiver.default = Reply(status=400)
        await api.post("/ingest/gone", content=b"{}")
        await run_worker(settings)
        await api.delete("/api/sources/gone", headers=AUTH)
        await api.delete(f"/api/subscriptions/{sub['id']}", headers=AUTH)
    for key in (
        Keys.source_events("gone"),
        Keys.sub_deliveries(sub["id"]),
        Keys.sub_dead(sub["id"]),
    ):
        assert await redis.zcard(key) == 1
    await store_for(redis, settings).housekeeping.trim_indexes(now_ms() + 2100)
    for key in (
        Keys.source_events("gone"),
        Keys.sub_deliveries(sub["id"]),
        Keys.sub_dead(sub["id"]),
    ):
        assert await redis.exists(key) == 0
    assert await redis.smembers(Keys.indexes) == set()
