"""Retention: records expire on their own; indexes are trimmed by range, never by scan."""

from __future__ import annotations

import asyncio
import json

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


async def test_a_paused_lane_is_trimmed_by_retention_and_its_backlog_alert_clears(
    make_settings, redis: aioredis.Redis, run_worker: WorkerRun, receiver: Receiver
) -> None:
    # 2 s of retention; the threshold's recovery mark (relay.domain.ops) is 1 for 3.
    settings = make_settings(retention_days=2 / 86400, retry=SHORT_LIVED, ops_backlog_threshold=3)
    operator = Receiver()
    try:
        async with running_app(create_app(settings)) as api:
            await create_subscription(api, operator.url, sources=["_relay.ops"])
            await create_source(api)
            plain = await create_subscription(api, receiver.url)
            fifo = await create_subscription(api, receiver.url, ordering={"mode": "fifo"})
            for sub in (plain, fifo):
                r = await api.post(f"/api/subscriptions/{sub['id']}/pause", headers=AUTH)
                assert r.status_code == 200, r.text
            for _ in range(4):
                await ingest(api)
            await run_worker(settings)  # the recovery pass at its start raises the alert
            assert await redis.zcard(Keys.lane(plain["id"])) == 4
            # FIFO: one head in the lane, three behind it.
            assert await redis.zcard(Keys.lane(fifo["id"])) == 1
            assert await redis.hkeys(Keys.ops_alerts) == [f"{plain['id']}:backlog".encode()]

            await asyncio.sleep(2.1)  # the paused deliveries' records expire
            await run_worker(settings)
            types = [json.loads(r.body)["type"] for r in operator.requests]
            page = await get(api, f"/api/subscriptions/{plain['id']}")
    finally:
        operator.close()

    assert types == ["subscription.backlog_exceeded", "subscription.backlog_recovered"]
    assert await redis.hkeys(Keys.ops_alerts) == []
    for sub in (plain, fifo):
        lane = Keys.lane(sub["id"])
        assert await redis.zcard(lane) == 0
        assert await redis.exists(Keys.lane(sub["id"], "heads")) == 0
        assert [k async for k in redis.scan_iter(f"{lane}:q:*")] == []
    assert receiver.requests == []  # paused throughout: nothing was sent
    assert page["paused"] is True
