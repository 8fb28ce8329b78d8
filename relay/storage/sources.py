"""Sources: where webhooks come in (``source:{name}``, the ``sources`` set)."""

from __future__ import annotations

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from relay.domain.input_rules import STORED
from relay.domain.models import Source, SourceIn
from relay.storage.codec import dumps, r
from relay.storage.keys import Keys


def _source_json(source: Source) -> bytes:
    # Secrets are stored (verification needs them) but never leave through the API.
    data = source.model_dump(mode="json")
    verification = source.verification.model_dump(mode="python")
    data["verification"] = {
        k: ([s.get_secret_value() for s in v] if k == "secrets" else v)
        for k, v in verification.items()
    }
    return dumps(data)


class SourceStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def put(self, name: str, spec: SourceIn, now_ms: int) -> tuple[Source, bool]:
        """Create or replace a source; returns it and whether it was new."""
        key = Keys.source(name)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    old = await r(pipe.hget(key, "config"))
                    created_at = now_ms if old is None else orjson.loads(old)["created_at"]
                    source = Source(
                        name=name, created_at=created_at, updated_at=now_ms, **dict(spec)
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, "config", _source_json(source))  # type: ignore[arg-type]
                    pipe.hincrby(key, "rev", 1)
                    pipe.sadd(Keys.sources, name)
                    await pipe.execute()
                    return source, old is None
                except WatchError:
                    continue

    async def get(self, name: str) -> tuple[Source, str] | None:
        """The source and its revision (the ingest script refuses a stale revision)."""
        config, rev = await r(self._redis.hmget(Keys.source(name), ["config", "rev"]))
        if config is None:
            return None
        return Source.model_validate_json(config, context=STORED), rev.decode()

    async def all(self) -> list[Source]:
        names = sorted(n.decode() for n in await r(self._redis.smembers(Keys.sources)))
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(Keys.source(name), "config")
            configs = await pipe.execute()
        return [Source.model_validate_json(c, context=STORED) for c in configs if c is not None]

    async def missing(self, names: list[str]) -> list[str]:
        """Which of these names no source has."""
        if not names:
            return []
        found = await r(self._redis.smismember(Keys.sources, names))
        return [name for name, there in zip(names, found, strict=True) if not there]

    async def delete(self, name: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(Keys.source(name))
            pipe.srem(Keys.sources, name)
            deleted, _ = await pipe.execute()
        return bool(deleted)
