"""Subscriptions: who wants which events (``sub:{id}`` and the indexes that list them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from relay.domain.input_rules import STORED
from relay.domain.matching import ANY_SOURCE
from relay.domain.models import Subscription, UnusableSubscription
from relay.domain.redaction import describe, mask_url
from relay.storage.codec import dumps, r, text
from relay.storage.keys import PREFIX, JobQueue, Keys
from relay.storage.scripts import DeleteSubscription, Pause, SaveSubscription, Scripts

# The hash fields a subscription is read from; ``failing`` is its own key.
FIELDS = ("config", "enabled", "disabled_reason", "paused")
_STATE = frozenset({"enabled", "disabled_reason", "paused"})


class UnusableRecord(LookupError):
    """The subscription is stored, but not in a form this version can use."""

    def __init__(self, record: UnusableSubscription) -> None:
        super().__init__(record.id)
        self.record = record


def from_fields(
    sub_id: str, fields: Sequence[bytes | None]
) -> Subscription | UnusableSubscription | None:
    """A stored subscription; whatever a record holds (an older or buggy version's, one
    edited by hand), reading it never raises: what cannot be used comes back as an
    :class:`UnusableSubscription` that says why."""
    config, enabled, reason, paused = fields
    if config is None:
        return None
    state = {
        "enabled": enabled == b"1",
        "disabled_reason": text(reason) or None,
        "paused": paused == b"1",
    }
    try:
        data = orjson.loads(config)
    except orjson.JSONDecodeError:
        return UnusableSubscription(id=sub_id, problem="the stored record is not JSON", **state)
    if not isinstance(data, dict):
        return UnusableSubscription(id=sub_id, problem="the stored record is not an object",
                                    **state)  # fmt: skip
    if data.get("id") != sub_id:
        return UnusableSubscription(id=sub_id, problem="id: differs from the record's key",
                                    **_salvage(data), **state)  # fmt: skip
    try:
        return Subscription.model_validate({**data, **state}, context=STORED)
    except ValidationError as exc:
        return UnusableSubscription(id=sub_id, problem=describe(exc), **_salvage(data), **state)


def _salvage(data: dict[str, Any]) -> dict[str, Any]:
    """What an operator needs to recognise an unusable record, where it has the right type."""
    found: dict[str, Any] = {}
    url = data.get("url")
    if isinstance(url, str):
        try:
            found["url"] = mask_url(url)
        except ValueError:
            found["url"] = None
    sources = data.get("sources")
    if isinstance(sources, list) and all(isinstance(x, str) for x in sources):
        found["sources"] = sources
    if isinstance(data.get("description"), str):
        found["description"] = data["description"]
    for stamp in ("created_at", "updated_at"):
        if type(data.get(stamp)) is int:
            found[stamp] = data[stamp]
    return found


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
                    row = await r(pipe.hmget(Keys.sub(sub_id), list(FIELDS)))
                    current = from_fields(sub_id, row)
                    if current is None:
                        return None
                    if isinstance(current, UnusableSubscription):
                        raise UnusableRecord(current)
                    updated = change(current)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    await self._scripts.run(self._save(updated, current), client=pipe)
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue

    async def get(self, sub_id: str) -> Subscription | UnusableSubscription | None:
        return from_fields(sub_id, await r(self._redis.hmget(Keys.sub(sub_id), list(FIELDS))))

    async def _many(self, ids: Iterable[bytes | str]) -> list[Subscription | UnusableSubscription]:
        names = sorted(i.decode() if isinstance(i, bytes) else i for i in ids)
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sub_id in names:
                pipe.hmget(Keys.sub(sub_id), list(FIELDS))
            rows = await pipe.execute()
        found = (from_fields(sub_id, row) for sub_id, row in zip(names, rows, strict=True))
        return [s for s in found if s is not None]

    async def missing(self, sub_ids: Iterable[str]) -> set[str]:
        """Those of these subscriptions that do not exist (deleted)."""
        names = sorted(set(sub_ids))
        async with self._redis.pipeline(transaction=False) as pipe:
            for sub_id in names:
                pipe.exists(Keys.sub(sub_id))
            found = await pipe.execute() if names else []
        return {sub_id for sub_id, n in zip(names, found, strict=True) if not n}

    async def all(self) -> list[Subscription | UnusableSubscription]:
        return await self._many(await r(self._redis.smembers(Keys.subs)))

    async def for_source(self, source: str) -> list[Subscription | UnusableSubscription]:
        ids = await r(self._redis.sunion([Keys.subs_for(source), Keys.subs_for("*")]))
        return await self._many(ids)

    async def known(self, sub_id: str) -> bool:
        """The subscription exists, or did and still has deliveries on record."""
        found = await r(self._redis.exists(Keys.sub(sub_id), Keys.sub_deliveries(sub_id)))
        return bool(found)

    async def revision(self) -> str:
        """Bumped by every change to any subscription: fan-out's cache is valid while equal."""
        rev = await r(self._redis.get(Keys.subs_rev))
        return "0" if rev is None else str(rev.decode())

    async def delete(self, sub: Subscription | UnusableSubscription, now_ms: int) -> None:
        """Delete a subscription; deliveries still in its lane are closed as
        SubscriptionDeleted by its lane's job."""
        sources = set(sub.sources)
        if isinstance(sub, UnusableSubscription):
            # Its sources may be unreadable or wrong: leave every index it could be in.
            names = await r(self._redis.smembers(Keys.sources))
            sources |= {n.decode() for n in names} | {ANY_SOURCE}
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
                source_indexes=[Keys.subs_for(s) for s in sorted(sources)],
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
