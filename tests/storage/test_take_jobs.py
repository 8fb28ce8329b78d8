"""Taking due lane jobs in one step: the checks and writes of arq's ``start_jobs``."""

from __future__ import annotations

import redis.asyncio as aioredis

from config.settings import Settings
from relay.delivery.queue import job_queue
from relay.domain.clock import now_ms
from relay.storage import Store


async def test_only_due_jobs_nobody_runs_are_taken_and_leave_the_head_of_the_queue(
    redis: aioredis.Redis, store: Store, settings: Settings
) -> None:
    queue = job_queue(settings.queue_name)
    now = now_ms()
    await redis.zadd(queue.queue_key, {"lane:a:1": now - 5, "lane:b:1": now - 4,
                                       "lane:c:1": now + 60_000})  # fmt: skip
    await redis.set(queue.in_progress_prefix + "lane:b:1", b"1")  # running on another worker

    taken = await store.lanes.take_jobs(["lane:a:1", "lane:b:1", "lane:c:1", "lane:gone:1"],
                                        now, timeout_ms=30_000)  # fmt: skip

    assert taken == [("lane:a:1", now - 5)]
    assert 29_000 < await redis.pttl(queue.in_progress_prefix + "lane:a:1") <= 30_000
    # Out of the due range until its in-progress mark runs out, as arq would retry it.
    assert await redis.zscore(queue.queue_key, "lane:a:1") == now + 30_000
    assert await redis.zscore(queue.queue_key, "lane:b:1") == now - 4
    assert await store.lanes.take_jobs(["lane:a:1"], now, timeout_ms=30_000) == []
