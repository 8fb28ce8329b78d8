"""What every relay process keeps checking about its Redis, besides whether it answers.

Every ``RELAY_REDIS_CHECK_INTERVAL_S``:

- the eviction policy (``INFO memory``; see :mod:`relay.domain.eviction`). A change away
  from ``noeviction`` is logged once (``redis.evicting``, error), makes ingest answer 503
  and ``/readyz`` not ready, and is reported as an operational event (once for all
  processes); its return is logged and reported the same way.
- whether Redis takes writes: one small write. A refusal (``OOM``) starts an out-of-memory
  outage even in a process with nothing else to write; a success ends one (reads go on
  while writes are refused, so only a write can end it).
- Redis's clock against ours (``TIME``), so that the ingest script can refuse work that
  reaches Redis after the request gave up on it (:meth:`RedisHealth.redis_deadline_ms`).

    watch = RedisWatch(store, health, settings, publish)
    task = watch.start()      # cancelled at shutdown
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import structlog
from redis.asyncio import Redis

from config.settings import Settings
from relay.delivery import queue
from relay.delivery.connection import API, UNAVAILABLE, RedisHealth, redis_client
from relay.domain import ops
from relay.domain.clock import now_ms
from relay.domain.eviction import REQUIRED_POLICY, eviction_problem
from relay.storage import Store

log = structlog.get_logger("relay.redis")

Publish = Callable[[Sequence[str]], Awaitable[None]]

# Redis's clock is taken from the tightest of this many recent measurements (a minute, at
# the default interval): clocks drift far slower than that.
_CLOCK_SAMPLES = 12


class RedisWatch:
    def __init__(self, store: Store, health: RedisHealth, settings: Settings, publish: Publish):
        self._store = store
        self._health = health
        self._interval_s = settings.redis_check_interval_s
        self._publish = publish
        # The policy last reported to Redis (None: not yet, this run).
        self._reported: str | None = None
        # (error, offset) of Redis's clock against ours, the last few checks.
        self._clock_samples: deque[tuple[int, int]] = deque(maxlen=_CLOCK_SAMPLES)

    def start(self) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except UNAVAILABLE:
                pass  # the outage is logged once, by RedisHealth
            except Exception:
                log.exception("redis.check_failed")
            await asyncio.sleep(self._interval_s)

    async def check(self) -> None:
        housekeeping = self._store.housekeeping
        # A full Redis is seen here even by a process with nothing to write (an idle API's
        # /readyz), and its end too: reads go on while writes are refused.
        await housekeeping.probe_write()
        self._health.wrote()
        policy = await housekeeping.memory_policy()
        problem = eviction_problem(policy)
        if self._health.set_evicting(policy if problem else None):
            if problem:
                log.error("redis.evicting", maxmemory_policy=policy, detail=problem)
            else:
                log.info("redis.evicting_stopped", maxmemory_policy=policy)
        # Reported until it is: a report that met an outage is made at the next check. The
        # script reports each change once, whichever process gets there first.
        current = policy if problem and policy else REQUIRED_POLICY
        if current != self._reported:
            await self._report(current)
            self._reported = current
        await self._measure_clock()

    async def _measure_clock(self) -> None:
        before = time.time() * 1000
        redis_ms = await self._store.housekeeping.redis_time_ms()
        after = time.time() * 1000
        # TIME is read somewhere within the round trip (and truncated to the ms).
        error = round((after - before) / 2) + 1
        self._clock_samples.append((error, round(redis_ms - (before + after) / 2)))
        # The tightest recent sample: one taken while this process was busy (a slow round
        # trip) would move deadlines earlier and refuse webhooks that were in time.
        error, offset = min(self._clock_samples)
        self._health.clock_offset_ms, self._health.clock_error_ms = offset, error

    async def _report(self, policy: str) -> None:
        types = (ops.EVICTION_POLICY_UNSAFE, ops.EVICTION_POLICY_RESTORED)
        emitted = await self._store.ops.report_eviction_policy(
            policy, REQUIRED_POLICY, ops.OPS_SOURCE, types, now_ms()
        )
        if emitted:
            await self._publish(emitted)


async def startup_problem(settings: Settings) -> str | None:
    """Why a process must not start against this Redis (its eviction policy), or None."""
    redis = redis_client(settings, API, Redis)
    try:
        store = Store(redis, queue.job_queue(settings.queue_name), settings.retention_ms)
        policy = await store.housekeeping.memory_policy()
        if policy is None:
            log.warning(
                "redis.eviction_policy_unknown",
                detail="INFO memory does not give maxmemory_policy: make sure it is noeviction",
            )
        return eviction_problem(policy)
    finally:
        await redis.aclose()
