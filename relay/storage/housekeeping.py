"""What keeps the store healthy and observable: worker heartbeats, queue depth, retention
trimming of the indexes, and a ping for readiness."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, ResponseError

from relay.domain.ids import id_bound
from relay.storage.codec import r
from relay.storage.keys import Keys
from relay.storage.lanes import LaneDepth, LaneStore
from relay.storage.scripts import ForgetEmptyIndexes, Scripts


@dataclass(frozen=True, slots=True)
class QueueDepth:
    due: int
    scheduled: int
    dead: int
    lanes: list[LaneDepth]


# A worker beats every HEARTBEAT_S (one ZADD). /readyz counts it as alive for 15 s; the
# recovery cron takes its lanes from it after HOLDER_STALE_MS without a beat. Taking a lane
# from a worker that is only slow is harmless (its attempts keep their leases; its job stops
# as 'not_owner'), so that threshold is short: a crashed worker costs seconds, not a minute.
HEARTBEAT_S = 1.0
HEARTBEAT_STALE_MS = 15_000
HOLDER_STALE_MS = 5_000
# Lanes trimmed per script call: one short Redis step each, however many lanes have work.
_LANES_PER_STEP = 100


class Housekeeping:
    def __init__(self, redis: Redis, scripts: Scripts, retention_ms: int, lanes: LaneStore) -> None:
        self._redis = redis
        self._scripts = scripts
        self._retention_ms = retention_ms
        self._lanes = lanes

    async def ping(self) -> None:
        """Raises unless Redis answers."""
        await self._redis.ping()

    async def memory_policy(self) -> str | None:
        """Redis's ``maxmemory-policy``, from ``INFO memory`` (managed services that disable
        CONFIG allow it); None if this Redis does not say."""
        try:
            info = await self._redis.info("memory")
        except ResponseError as exc:
            if isinstance(exc, OutOfMemoryError):
                raise
            return None  # INFO renamed or denied by the provider
        policy = info.get("maxmemory_policy")
        return None if policy is None else str(policy)

    async def probe_write(self) -> None:
        """One small write (kept a minute); raises OutOfMemoryError while Redis is full."""
        await self._redis.set(Keys.write_probe, b"1", px=60_000)

    async def redis_time_ms(self) -> int:
        """Redis's own clock (``TIME``), in ms."""
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def heartbeat(
        self,
        worker_id: str,
        now_ms: int,
        stale_after_ms: int = HEARTBEAT_STALE_MS,
        *,
        picking: bool = True,
    ) -> None:
        """The worker is alive (it holds its lanes); ``picking``: it takes new jobs too, so
        it counts in the others' fair share of lanes (a stopping worker does not)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(Keys.workers, {worker_id: now_ms})
            if picking:
                pipe.zadd(Keys.picking_workers, {worker_id: now_ms})
            else:
                pipe.zrem(Keys.picking_workers, worker_id)
            for key in (Keys.workers, Keys.picking_workers):
                pipe.zremrangebyscore(key, "-inf", now_ms - 10 * stale_after_ms)
            await pipe.execute()

    async def forget_worker(self, worker_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(Keys.workers, worker_id)
            pipe.zrem(Keys.picking_workers, worker_id)
            await pipe.execute()

    async def live_workers(self, now_ms: int, stale_after_ms: int = HEARTBEAT_STALE_MS) -> int:
        live: int = await r(self._redis.zcount(Keys.workers, now_ms - stale_after_ms, "+inf"))
        return live

    async def lane_load(self, now_ms: int) -> tuple[int, int]:
        """Lanes with work, and workers taking new jobs with a heartbeat in the last
        ``HOLDER_STALE_MS`` (the ones whose lanes are not taken from them): one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.scard(Keys.lanes)
            pipe.zcount(Keys.picking_workers, now_ms - HOLDER_STALE_MS, "+inf")
            busy, live = await pipe.execute()
        return int(busy), int(live)

    async def heartbeats(self) -> list[tuple[str, int]]:
        """Every worker seen lately and its last heartbeat (ms), most recent first."""
        rows = await r(self._redis.zrevrange(Keys.workers, 0, -1, withscores=True))
        return [(worker.decode(), int(ms)) for worker, ms in rows]

    async def queue_depth(self, now_ms: int, within: Collection[str] | None = None) -> QueueDepth:
        """Deliveries due now (in flight included), scheduled for later, and dead, summed
        over the lanes that have work (of the subscriptions ``within`` a token's scope),
        and each of those lanes."""
        lanes = await self._lanes.depths(now_ms)
        if within is None:
            dead: int = await r(self._redis.zcard(Keys.dead))
        else:
            lanes = [d for d in lanes if d.subscription_id in within]
            async with self._redis.pipeline(transaction=False) as pipe:
                for sub_id in within:
                    pipe.zcard(Keys.sub_dead(sub_id))
                dead = sum(int(n) for n in await pipe.execute())
        return QueueDepth(
            due=sum(d.due + d.in_flight for d in lanes),
            scheduled=sum(d.waiting - d.due for d in lanes),
            dead=int(dead),
            lanes=lanes,
        )

    async def trim_indexes(self, now_ms: int) -> int:
        """Drop index entries older than the retention period; their records expired. Lanes
        too: a paused lane hands out nothing, so only this drops its expired deliveries."""
        cutoff_events = "(" + id_bound("evt", now_ms - self._retention_ms, upper=False)
        cutoff_deliveries = "(" + id_bound("dlv", now_ms - self._retention_ms, upper=False)
        registered = sorted(k.decode() for k in await r(self._redis.smembers(Keys.indexes)))
        indexes = [Keys.events, Keys.deliveries, Keys.dead, *registered]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in indexes:
                cutoff = cutoff_events if ":events" in key else cutoff_deliveries
                pipe.zremrangebylex(key, "-", cutoff)
                pipe.zcard(key)
            pipe.zremrangebyscore(Keys.unfanned, "-inf", now_ms - self._retention_ms)
            results = await pipe.execute()
        empty = [k for k, n in zip(indexes, results[1:-1:2], strict=True) if n == 0]
        forget = [k for k in empty if k in registered]
        if forget:
            await self._scripts.run(
                ForgetEmptyIndexes(registry_key=Keys.indexes, candidates=forget)
            )
        lanes = await self._lanes.with_work()
        dropped = 0
        for i in range(0, len(lanes), _LANES_PER_STEP):
            dropped += await self._lanes.trim_expired(
                lanes[i : i + _LANES_PER_STEP], now_ms - self._retention_ms, now_ms
            )
        return sum(int(n) for n in results[0:-1:2]) + int(results[-1]) + dropped
