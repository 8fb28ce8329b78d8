"""kill -9 of the API in the middle of a fan-out to 10,000 subscriptions: the recovery cron
carries it on from its cursor, and every subscription gets exactly one delivery."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis
import redis.asyncio as aioredis

from relay.delivery import queue
from relay.storage import Store
from relay.storage.keys import DEFAULT_QUEUE, Keys
from tests.faults.conftest import Figures
from tests.faults.harness import RelayStack, post_keyed, wait_until
from tests.storage.helpers import deliveries_by_subscription, many_subscriptions

N = 10_000


async def subscribe(url: str) -> set[str]:
    client = aioredis.Redis.from_url(url)
    try:
        store = Store(client, queue.job_queue(DEFAULT_QUEUE), retention_ms=86_400_000)
        return await many_subscriptions(store, N, "http://127.0.0.1:9", ["github"])
    finally:
        await client.aclose()


async def deliveries(url: str, event_id: str) -> Counter[str]:
    client = aioredis.Redis.from_url(url)
    try:
        return await deliveries_by_subscription(client, event_id)
    finally:
        await client.aclose()


def test_a_fan_out_killed_between_chunks_resumes_without_loss_or_duplicates(
    stack: RelayStack, fault_figures: Figures
) -> None:
    stack.start_api()
    stack.put_source()
    sub_ids = asyncio.run(subscribe(stack.redis.url))
    r = redis.Redis.from_url(stack.redis.url)
    with stack.client() as client:
        _, response = post_keyed(client)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    cursor = Keys.event_fanout_cursor(event_id)

    wait_until(lambda: r.exists(cursor) == 1, 30, "a first chunk committed", interval_s=0.001)
    stack.kill("api")
    partial = asyncio.run(deliveries(stack.redis.url, event_id))
    assert r.zscore(Keys.unfanned, event_id) is not None, "the fan-out ended before the kill"
    assert 0 < sum(partial.values()) < N

    stack.start_worker(RELAY_FANOUT_GRACE_S="0")  # its recovery pass at start carries on
    wait_until(lambda: r.zscore(Keys.unfanned, event_id) is None, 60, "the fan-out finished")
    got = asyncio.run(deliveries(stack.redis.url, event_id))
    fault_figures("deliveries made before the kill", sum(partial.values()))
    assert set(got) == sub_ids
    assert set(got.values()) == {1}
    assert r.exists(cursor) == 0
    assert "recovery.fanned_out" in stack.log("worker")
