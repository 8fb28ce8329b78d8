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
