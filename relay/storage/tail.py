"""`relay tail`: a pub/sub channel of what happens, used only while a tail is connected.

A connected tail keeps ``tail`` set (with a short TTL it renews); publishers look at that
key at most once a second (:class:`relay.delivery.tail.TailGate`), so nobody pays for the
channel while nobody tails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.asyncio import Redis

from relay.storage.codec import r
from relay.storage.keys import Keys


class TailStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def active(self) -> bool:
        return bool(await r(self._redis.exists(Keys.tail)))

    async def connected(self, ttl_ms: int) -> None:
        """A tail is listening, for ``ttl_ms`` more at least."""
        await r(self._redis.set(Keys.tail, b"1", px=ttl_ms))

    async def publish(self, messages: list[bytes]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(Keys.tail_channel, message)
            await pipe.execute()

    async def messages(self, poll_s: float) -> AsyncIterator[bytes | None]:
        """What is published from now on; None every ``poll_s`` without a message, so the
        reader can renew its mark and notice a client gone."""
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(Keys.tail_channel)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll_s)
                yield None if message is None else bytes(message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
