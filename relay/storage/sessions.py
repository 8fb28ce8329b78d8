"""Dashboard sessions: the CSRF token of each signed-in browser, until it expires.

The key is named by a digest of the session cookie, so the cookie cannot be read back from
Redis (a dump or MONITOR shows no usable session).
"""

from __future__ import annotations

from redis.asyncio import Redis

from relay.storage.codec import r
from relay.storage.keys import Keys


class SessionStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create(self, digest: str, value: bytes, ttl_ms: int) -> None:
        await r(self._redis.set(Keys.ui_session(digest), value, px=ttl_ms))

    async def get(self, digest: str) -> bytes | None:
        found: bytes | None = await r(self._redis.get(Keys.ui_session(digest)))
        return found

    async def delete(self, digest: str) -> None:
        await r(self._redis.delete(Keys.ui_session(digest)))
