"""`relay listen` subscriptions and the last time each one's stream was seen alive."""

from __future__ import annotations

from redis.asyncio import Redis

from relay.storage.codec import r
from relay.storage.keys import Keys


class ListenerStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def seen(self, sub_id: str, now_ms: int) -> None:
        """The listener is alive now (registers a new one)."""
        await r(self._redis.zadd(Keys.listeners, {sub_id: now_ms}))

    async def last_seen(self, sub_id: str) -> int | None:
        """When its stream was last alive; None for a subscription that is no listener."""
        score = await r(self._redis.zscore(Keys.listeners, sub_id))
        return None if score is None else int(score)

    async def silent_since(self, cutoff_ms: int, limit: int = 100) -> list[str]:
        """Listeners not seen alive since ``cutoff_ms``."""
        ids = await r(self._redis.zrangebyscore(Keys.listeners, "-inf", cutoff_ms, 0, limit))
        return [i.decode() for i in ids]

    async def forget(self, sub_id: str) -> None:
        await r(self._redis.zrem(Keys.listeners, sub_id))

    async def answer(self, delivery_id: str, report: bytes, ttl_ms: int) -> None:
        """Leave a report for the process whose stream waits for it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(Keys.listen_answer(delivery_id), report)
            pipe.pexpire(Keys.listen_answer(delivery_id), ttl_ms)
            await pipe.execute()

    async def take_answer(self, delivery_id: str) -> bytes | None:
        """A report left by another process, once."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpop(Keys.listen_answer(delivery_id))
            pipe.delete(Keys.listen_answer(delivery_id))
            found, _ = await pipe.execute()
        return None if found is None else bytes(found)
