"""The worker's poll loop with Redis away: it keeps running and keeps all its job slots."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from arq.connections import ArqRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from config.settings import Settings
from relay.delivery.connection import Profile, redis_client
from relay.devtools.embedded_redis import free_port
from workers.main import build_worker


async def test_a_poll_without_redis_neither_ends_the_worker_nor_leaks_a_slot(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", worker_max_jobs=3)
    # No retries: the point is what the worker does once the connection gives up.
    pool = redis_client(settings, Profile(retries=0, retry_on_timeout=False), ArqRedis)
    worker = build_worker(settings, pool, handle_signals=False)
    free = worker.sem._value
    try:
        await worker._poll_iteration()  # arq's own would raise, and end main()
        for _ in range(4):  # more outages than slots
            with pytest.raises(RedisConnectionError):
                await worker.start_jobs([b"lane:sub_x:1"])
        assert worker.job_counter == 0
        assert worker.sem._value == free  # every slot still free for when Redis is back
    finally:
        await pool.aclose()
