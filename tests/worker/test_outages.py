"""The worker with Redis away: its poll loop keeps running with all its job slots, and an
attempt it cannot record is left to its lease, not recorded as a failure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from config.settings import Settings
from relay.delivery import outbound, queue
from relay.delivery.attempt import Attempter
from relay.delivery.connection import Profile, redis_client
from relay.delivery.fanout import EventRef, FanoutBatcher, Planned, SubscriptionCache
from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.receiver import Receiver
from relay.domain.clock import now_ms
from relay.domain.lane_limits import LaneLimits
from relay.domain.signing import generate_secret
from relay.storage import Store
from tests.storage.helpers import fan_out, stored_event, subscription
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


async def test_an_attempt_that_cannot_be_recorded_is_not_recorded_as_a_failure(
    make_settings: Callable[..., Settings],
) -> None:
    with EmbeddedRedis() as server:
        # Redis dies while the receiver answers: the attempt was made, its record cannot be.
        receiver = Receiver(on_request=lambda *_: server.stop())
        settings = make_settings(redis_url=server.url)
        redis = redis_client(settings, Profile(retries=0, retry_on_timeout=False), Redis)
        store = Store(redis, queue.job_queue(settings.queue_name), settings.retention_ms)
        sub = await subscription(store, url=receiver.url)
        # A secret that signs (the storage helper's is a placeholder).
        signed = await store.subscriptions.update(
            sub.id, lambda s: s.model_copy(update={"secret": generate_secret()})
        )
        assert signed is not None
        await fan_out(store, sub)
        now = now_ms()
        [ctx] = (await store.lanes.claim(sub.id, 1, now, now + 60_000, LaneLimits(16))).contexts
        sender = outbound.make_sender(4, settings.address_guard)
        try:
            with capture_logs() as logs, pytest.raises(RedisConnectionError):
                await Attempter(store, sender, settings).attempt(ctx)
        finally:
            receiver.close()
            await sender.aclose()
            await redis.aclose()
    assert len(receiver.requests) == 1
    # Not an "internal error" attempt to retry on the schedule: the lease runs out instead.
    assert "delivery.attempt_error" not in [e["event"] for e in logs]


async def test_a_fan_out_that_meets_redis_away_is_made_when_it_returns(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    port = free_port()
    servers = [EmbeddedRedis(tmp_path, port=port).start()]
    settings = make_settings(redis_url=servers[0].url)
    redis = redis_client(settings, Profile(retries=0, retry_on_timeout=False), Redis)
    store = Store(redis, queue.job_queue(settings.queue_name), settings.retention_ms)
    try:
        await subscription(store)
        event_id = await stored_event(store)  # accepted: the 202 has gone out

        async def nothing(_: Planned) -> None:
            return None

        batcher = FanoutBatcher(
            store, SubscriptionCache(store), window_s=0, max_batch=1, inline_lease_ms=1000,
            after_commit=nothing,
        )  # fmt: skip
        servers[0].stop()  # Redis restarts between the 202 and the fan-out
        restart = threading.Timer(0.6, lambda: servers.append(servers[0].start()))
        restart.start()
        with capture_logs() as logs:
            await batcher.submit(EventRef(event_id, "src", "t"))
        restart.join()
        assert "fanout.failed" not in [e["event"] for e in logs]
        # Fanned out now, not after the recovery cron's grace period.
        assert len(await store.events.delivery_ids(event_id)) == 1
    finally:
        await redis.aclose()
        servers[0].stop()


async def test_a_job_task_that_ends_badly_does_not_end_the_poll_loop(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    """arq re-raises a finished job task's exception in its poll loop (``t.result()``),
    which ended the whole worker: a job's bookkeeping meeting a full Redis, or a job task
    cancelled while the worker runs on (it exited 0 without a word)."""
    settings = make_settings(redis_url=redis_url)
    pool = queue.connect(settings)
    worker = build_worker(settings, pool, handle_signals=False)
    loop = asyncio.get_running_loop()
    try:
        # run_job of a job id that does not exist finds no job and returns: the tasks below
        # end as a job task would if its own Redis work failed, or if it were cancelled.
        with capture_logs() as logs:
            cancelled = loop.create_task(worker.run_job("lane:sub_gone:1", 0))
            worker.tasks["lane:sub_gone:1"] = cancelled
            await asyncio.sleep(0)  # it runs up to its first wait on Redis
            cancelled.cancel()
            await asyncio.wait([cancelled])
            await worker._poll_iteration()  # arq's own would raise CancelledError here
        assert "lane:sub_gone:1" not in worker.tasks
        assert "worker.job_cancelled" in [e["event"] for e in logs]
    finally:
        await pool.aclose()


async def test_a_poll_that_fails_for_another_reason_is_logged_and_the_loop_goes_on(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    """An error that is no outage (here the queue's key holds a string: WRONGTYPE) is one
    log line per poll, not the end of the worker and of every lane it runs."""
    settings = make_settings(redis_url=redis_url)
    pool = queue.connect(settings)
    worker = build_worker(settings, pool, handle_signals=False)
    try:
        await pool.set(settings.queue_name, "not a sorted set")
        with capture_logs() as logs:
            await worker._poll_iteration()  # arq's own raises ResponseError (WRONGTYPE)
        assert "worker.poll_failed" in [e["event"] for e in logs]
    finally:
        await pool.delete(settings.queue_name)
        await pool.aclose()
