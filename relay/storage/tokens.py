"""API tokens: one record per token, and the set of tokens with when each was last used.

Revoking deletes the record, and every API process reads the record on every request that
presents the token: there is no cache to invalidate, so a revoked token fails on the next
request wherever it lands.
"""

from __future__ import annotations

from redis.asyncio import Redis

from relay.domain.tokens import Token
from relay.storage.codec import r
from relay.storage.keys import Keys


class TokenStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create(self, token: Token) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(Keys.token(token.id), token.model_dump_json())
            pipe.zadd(Keys.tokens, {token.id: 0})
            await pipe.execute()

    async def get(self, token_id: str) -> Token | None:
        raw = await r(self._redis.get(Keys.token(token_id)))
        return None if raw is None else Token.model_validate_json(raw)

    async def all(self) -> list[tuple[Token, int]]:
        """Every token, oldest first, with when it was last used (ms; 0: never)."""
        used = await r(self._redis.zrange(Keys.tokens, 0, -1, withscores=True))
        ids = sorted((i.decode(), int(score)) for i, score in used)
        if not ids:
            return []
        raws = await r(self._redis.mget([Keys.token(i) for i, _ in ids]))
        return [
            (Token.model_validate_json(raw), when)
            for raw, (_, when) in zip(raws, ids, strict=True)
            if raw is not None
        ]

    async def last_used(self, token_id: str) -> int:
        score = await r(self._redis.zscore(Keys.tokens, token_id))
        return 0 if score is None else int(score)

    async def touch(self, token_id: str, now_ms: int) -> None:
        # XX: a token revoked since it was read is not brought back.
        await r(self._redis.zadd(Keys.tokens, {token_id: now_ms}, xx=True))

    async def delete(self, token_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(Keys.token(token_id))
            pipe.zrem(Keys.tokens, token_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)
