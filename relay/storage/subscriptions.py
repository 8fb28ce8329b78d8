"""Subscriptions: who wants which events (``sub:{id}`` and the indexes that list them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from relay.domain.models import Subscription
from relay.storage.codec import dumps, r, text
from relay.storage.keys import PREFIX, JobQueue, Keys
from relay.storage.scripts import DeleteSubscription, Pause, SaveSubscription, Scripts

# The hash fields a subscription is read from; ``failing`` is its own key.
FIELDS = ("config", "enabled", "disabled_reason", "paused")
_STATE = frozenset({"enabled", "disabled_reason", "paused"})


def from_fields(fields: Sequence[bytes | None]) -> Subscription | None:
    config, enabled, reason, paused = fields
    if config is None:
        return None
    data = orjson.loads(config)
    data["enabled"] = enabled == b"1"
    data["disabled_reason"] = text(reason) or None
    data["paused"] = paused == b"1"
    return Subscription.model_validate(data)


class SubscriptionStore:
    def __init__(self, redis: Redis, scripts: Scripts, queue: JobQueue) -> None:
        self._redis = redis
        self._scripts = scripts
        self._queue = queue

    def _save(
        self, sub: Subscription, old: Subscription | None, pipe: Pipeline | None = None
    ) -> SaveSubscription:
        old_sources = set(old.sources) if old else set()
        # Enabled again, or pointed elsewhere: it starts with a clean record.
        fresh = old is not None and ((sub.enabled and not old.enabled) or sub.url != old.url)
        return SaveSubscription(
            sub_key=Keys.sub(sub.id),
            subs_key=Keys.subs,
            failing_key=Keys.sub_failing(sub.id),
            subs_rev_key=Keys.subs_rev,
            state_key=Keys.lane(sub.id, "state"),
            sub_id=sub.id,
            config=dumps(sub.model_dump(mode="json", exclude=set(_STATE))),
            enabled=sub.enabled,
            disabled_reason=sub.disabled_reason,
            fresh_start=fresh,
            leave=[Keys.subs_for(s) for s in sorted(old_sources - set(sub.sources))],
            join=[Keys.subs_for(s) for s in sub.sources],
        )

    async def create(self, sub: Subscription) -> None:
        await self._scripts.run(self._save(sub, None))

    async def update(
        self, sub_id: str, change: Callable[[Subscription], Subscription]
    ) -> Subscription | None:
        """Read, change and write a subscription as one optimistic transaction.

        If anything touches it in between (another edit, a 410 disabling it, a delete),
        ``change`` runs again on what is there now, so no update is lost and a deleted
        subscription stays deleted (None).
        """
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(Keys.sub(sub_id))
                    current = from_fields(await r(pipe.hmget(Keys.sub(sub_id), list(FIELDS))))
                    if current is None:
                        return None
                    updated = change(current)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    await self._scripts.run(self._save(updated, current), client=pipe)
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue

    async def get(self, sub_id: str) -> Subscription | None:
        return from_fields(await r(self._redis.hmget(Keys.sub(sub_id), list(FIELDS))))

    async def _many(self, ids: Iterable[bytes | str]) -> list[Subscription]:
        names = sorted(i.decode() if isinstance(i, bytes) else i for i in ids)
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sub_id in names:
                pipe.hmget(Keys.sub(sub_id), list(FIELDS))
            rows = await pipe.execute()
        return [s for s in map(from_fields, rows) if s is not None]

    async def all(self) -> list[Subscription]:
        return await self._many(await r(self._redis.smembers(Keys.subs)))

    async def for_source(self, source: str) -> list[Subscription]:
        ids = await r(self._redis.sunion([Keys.subs_for(source), Keys.subs_for("*")]))
        return await self._many(ids)

    async def revision(self) -> str:
        """Bumped by every change to any subscription: fan-out's cache is valid while equal."""
        rev = await r(self._redis.get(Keys.subs_rev))
        return "0" if rev is None else str(rev.decode())

    async def delete(self, sub: Subscription, now_ms: int) -> None:
        """Delete a subscription; deliveries still in its lane are closed as
        SubscriptionDeleted by its lane's job."""
        await self._scripts.run(
            DeleteSubscription(
                sub_key=Keys.sub(sub.id),
                subs_key=Keys.subs,
                failing_key=Keys.sub_failing(sub.id),
                subs_rev_key=Keys.subs_rev,
                queue_key=self._queue.queue_key,
                prefix=PREFIX,
                job_prefix=self._queue.job_prefix,
                sub_id=sub.id,
                now_ms=now_ms,
                source_indexes=[Keys.subs_for(s) for s in sub.sources],
            )
        )

    async def set_paused(self, sub_id: str, paused: bool, now_ms: int) -> bool:
        """Pause (its lane hands out nothing) or resume (its lane is armed at once).
        False: no such subscription."""
        found = await self._scripts.run(
            Pause(
                sub_key=Keys.sub(sub_id),
                queue_key=self._queue.queue_key,
                prefix=PREFIX,
                job_prefix=self._queue.job_prefix,
                sub_id=sub_id,
                pause=paused,
                now_ms=now_ms,
            )
        )
        return bool(found)
