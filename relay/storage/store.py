"""The relay's persistence: ``RelayStore`` reads and writes through the keys and Lua
scripts of :mod:`relay.keys`.

Each state change that matters is one atomic step (a Lua script or a MULTI transaction),
so a process that dies between two lines of Python leaves Redis in a state that the
recovery cron knows how to finish.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError as _WatchError

from relay.domain.ids import id_bound
from relay.domain.models import (
    Attempt,
    Delivery,
    DeliveryMode,
    DeliveryStatus,
    Event,
    Source,
    SourceIn,
    Subscription,
)
from relay.storage.keys import (
    ADD_DELIVERIES_SCRIPT,
    CLAIM_SCRIPT,
    DELETE_SUBSCRIPTION_SCRIPT,
    FORGET_EMPTY_INDEXES_SCRIPT,
    INGEST_SCRIPT,
    PAUSE_SCRIPT,
    RECORD_SCRIPT,
    REOPEN_SCRIPT,
    Keys,
)

IngestStatus = Literal["accepted", "duplicate", "stale"]
ClaimStatus = Literal["ok", "missing", "terminal", "stale", "busy", "paused"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: IngestStatus
    event_id: str


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    subscription_id: str
    mode: DeliveryMode
    due_ms: int


@dataclass(frozen=True, slots=True)
class Due:
    delivery_id: str
    attempts: int
    subscription_id: str
    event_id: str
    # Bumped by every manual retry or replay; part of the job id, so a replay's job is never
    # mistaken for an older, still scheduled one.
    generation: int


@dataclass(frozen=True, slots=True)
class RetryWindow:
    """Where the retry policy starts counting: the first attempt, or the last replay."""

    base_attempts: int
    started_at: int | None
    generation: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """Everything one attempt needs, read in one round trip after the claim."""

    delivery: Delivery
    window: RetryWindow
    event: Event
    body: bytes
    subscription: Subscription | None


@dataclass(frozen=True, slots=True)
class Page:
    ids: list[str]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Recorded:
    disabled: str | None  # why this attempt disabled its subscription, if it did


class NotFannedOut(Exception):
    """A replay was asked for before the event's own fan-out: it would deliver it twice."""


class Reopened(Enum):
    MISSING = -1
    NOT_DEAD = -2
    IN_FLIGHT = -3


def _r(value: Awaitable[Any] | Any) -> Awaitable[Any]:
    """redis-py types asyncio results as ``Awaitable[T] | T`` (and as ``str`` where this
    client, with ``decode_responses=False``, returns ``bytes``); on this client they are
    awaitables of raw replies."""
    return cast(Awaitable[Any], value)


def _s(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _int(value: bytes | None) -> int | None:
    return None if value is None or value == b"" else int(value)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def _event_meta(
    source: str,
    event_type: str | None,
    received_ms: int,
    content_type: str,
    headers: dict[str, str],
    idempotency_key: str | None,
    body_bytes: int,
) -> bytes:
    return _dumps(
        {
            "source": source,
            "event_type": event_type,
            "received_at": received_ms,
            "content_type": content_type,
            "headers": headers,
            "idempotency_key": idempotency_key,
            "body_bytes": body_bytes,
        }
    )


def _duration(ms: int) -> str:
    for unit, size in (("days", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if ms >= size:
            return f"{ms / size:g} {unit}"
    return f"{ms / 1000:g} s"


def _lex_range(prefix: str, since_ms: int | None, until_ms: int | None) -> tuple[str, str]:
    """ZRANGEBYLEX bounds for ids created in [since, until] (ids sort by creation time)."""
    low = "[" + id_bound(prefix, since_ms, upper=False) if since_ms is not None else "-"
    high = "[" + id_bound(prefix, until_ms, upper=True) if until_ms is not None else "+"
    return low, high


_SUB_FIELDS = ("config", "enabled", "disabled_reason", "paused")


class RelayStore:
    """The relay's persistence, over one ``redis.asyncio.Redis`` (``decode_responses=False``).

    ``retention_ms`` is how long events, deliveries and attempts are kept.
    """

    def __init__(self, redis: Redis, retention_ms: int = 7 * 86_400_000) -> None:
        self.redis = redis
        self.retention_ms = retention_ms
        self._ingest = redis.register_script(INGEST_SCRIPT)
        self._add_deliveries = redis.register_script(ADD_DELIVERIES_SCRIPT)
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._record = redis.register_script(RECORD_SCRIPT)
        self._reopen = redis.register_script(REOPEN_SCRIPT)
        self._pause = redis.register_script(PAUSE_SCRIPT)
        self._delete_subscription = redis.register_script(DELETE_SUBSCRIPTION_SCRIPT)
        self._forget_empty = redis.register_script(FORGET_EMPTY_INDEXES_SCRIPT)

    # --- sources ---------------------------------------------------------------------------

    async def put_source(self, name: str, spec: SourceIn, now_ms: int) -> tuple[Source, bool]:
        """Create or replace a source; returns it and whether it was new."""
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(Keys.source(name))
                    old = await _r(pipe.hget(Keys.source(name), "config"))
                    created_at = now_ms if old is None else orjson.loads(old)["created_at"]
                    source = Source(
                        name=name, created_at=created_at, updated_at=now_ms, **dict(spec)
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(Keys.source(name), "config", self._source_json(source))  # type: ignore[arg-type]
                    pipe.hincrby(Keys.source(name), "rev", 1)
                    pipe.sadd(Keys.sources, name)
                    await pipe.execute()
                    return source, old is None
                except _WatchError:
                    continue

    @staticmethod
    def _source_json(source: Source) -> bytes:
        # Secrets are stored (verification needs them) but never leave through the API.
        data = source.model_dump(mode="json")
        verification = source.verification.model_dump(mode="python")
        data["verification"] = {
            k: ([s.get_secret_value() for s in v] if k == "secrets" else v)
            for k, v in verification.items()
        }
        return _dumps(data)

    async def get_source(self, name: str) -> tuple[Source, str] | None:
        """The source and its revision (the ingest script refuses a stale revision)."""
        config, rev = await _r(self.redis.hmget(Keys.source(name), ["config", "rev"]))
        if config is None:
            return None
        return Source.model_validate_json(config), rev.decode()

    async def list_sources(self) -> list[Source]:
        names = sorted(n.decode() for n in await _r(self.redis.smembers(Keys.sources)))
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(Keys.source(name), "config")
            configs = await pipe.execute()
        return [Source.model_validate_json(c) for c in configs if c is not None]

    async def delete_source(self, name: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(Keys.source(name))
            pipe.srem(Keys.sources, name)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    # --- subscriptions ---------------------------------------------------------------------

    @staticmethod
    def _sub_from(fields: Sequence[bytes | None]) -> Subscription | None:
        config, enabled, reason, paused = fields
        if config is None:
            return None
        data = orjson.loads(config)
        data["enabled"] = enabled == b"1"
        data["disabled_reason"] = _s(reason) or None
        data["paused"] = paused == b"1"
        return Subscription.model_validate(data)

    @staticmethod
    def _queue_subscription(
        pipe: Pipeline,
        sub: Subscription,
        old_sources: Iterable[str] = (),
        *,
        fresh_start: bool = False,
    ) -> None:
        config = sub.model_dump(mode="json", exclude={"enabled", "disabled_reason", "paused"})
        fields: dict[str, bytes | str] = {
            "config": _dumps(config),
            "enabled": "1" if sub.enabled else "0",
            "disabled_reason": sub.disabled_reason or "",
        }
        if fresh_start:
            # Enabled again, or pointed elsewhere: it starts with a clean record.
            pipe.hdel(Keys.sub(sub.id), "failing_since", "last_failure_at")
        for source in set(old_sources) - set(sub.sources):
            pipe.srem(Keys.subs_for(source), sub.id)
        for source in sub.sources:
            pipe.sadd(Keys.subs_for(source), sub.id)
        pipe.hset(Keys.sub(sub.id), mapping=fields)
        pipe.sadd(Keys.subs, sub.id)

    async def create_subscription(self, sub: Subscription) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self._queue_subscription(pipe, sub)
            await pipe.execute()

    async def update_subscription(
        self, sub_id: str, change: Callable[[Subscription], Subscription]
    ) -> Subscription | None:
        """Read, change and write a subscription as one optimistic transaction.

        If anything touches it in between (another edit, a 410 disabling it, a delete),
        ``change`` runs again on what is there now, so no update is lost and a deleted
        subscription stays deleted (None).
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(Keys.sub(sub_id))
                    fields = await _r(pipe.hmget(Keys.sub(sub_id), list(_SUB_FIELDS)))
                    current = self._sub_from(fields)
                    if current is None:
                        return None
                    updated = change(current)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._queue_subscription(
                        pipe, updated, current.sources,
                        fresh_start=(updated.enabled and not current.enabled)
                        or updated.url != current.url,
                    )  # fmt: skip
                    await pipe.execute()
                    return updated
                except _WatchError:
                    continue

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        return self._sub_from(await _r(self.redis.hmget(Keys.sub(sub_id), list(_SUB_FIELDS))))

    async def _subscriptions(self, ids: Iterable[bytes | str]) -> list[Subscription]:
        names = sorted(i.decode() if isinstance(i, bytes) else i for i in ids)
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sub_id in names:
                pipe.hmget(Keys.sub(sub_id), list(_SUB_FIELDS))
            rows = await pipe.execute()
        return [s for s in map(self._sub_from, rows) if s is not None]

    async def list_subscriptions(self) -> list[Subscription]:
        return await self._subscriptions(await _r(self.redis.smembers(Keys.subs)))

    async def subscriptions_for_source(self, source: str) -> list[Subscription]:
        ids = await _r(self.redis.sunion([Keys.subs_for(source), Keys.subs_for("*")]))
        return await self._subscriptions(ids)

    async def delete_subscription(self, sub: Subscription) -> None:
        """Delete a subscription; deliveries its pause had parked become due again."""
        await self._delete_subscription(
            keys=[
                Keys.sub(sub.id),
                Keys.paused(sub.id),
                Keys.due,
                Keys.subs,
                *map(Keys.subs_for, sub.sources),
            ],
            args=[sub.id],
        )

    async def set_paused(self, sub_id: str, paused: bool) -> list[str] | None:
        """Pause or resume; resuming makes parked deliveries due again and returns them in
        due order. None: no such subscription."""
        moved = await self._pause(
            keys=[Keys.sub(sub_id), Keys.paused(sub_id), Keys.due], args=["1" if paused else "0"]
        )
        return None if isinstance(moved, int) else [m.decode() for m in moved]

    # --- events ----------------------------------------------------------------------------

    async def ingest(
        self,
        *,
        event_id: str,
        source: str,
        source_rev: str,
        received_ms: int,
        event_type: str | None,
        content_type: str,
        headers: dict[str, str],
        body: bytes,
        idempotency_key: str | None,
        idempotency_ttl_s: int,
    ) -> IngestResult:
        """Store an event in one round trip; a repeat of an idempotency key stores nothing."""
        meta = _event_meta(source, event_type, received_ms, content_type, headers,
                           idempotency_key, len(body))  # fmt: skip
        status, value = await self._ingest(
            keys=[
                Keys.source(source),
                Keys.idempotency(source, idempotency_key or ""),
                Keys.event(event_id),
                Keys.event_body(event_id),
                Keys.events,
                Keys.source_events(source),
                Keys.unfanned,
                Keys.indexes,
            ],
            args=[
                source_rev,
                "1" if idempotency_key else "0",
                idempotency_ttl_s,
                event_id,
                received_ms,
                received_ms + self.retention_ms,
                meta,
                body,
            ],
        )
        return IngestResult(status=status.decode(), event_id=value.decode())

    async def store_event(
        self, *, event_id: str, source: str, event_type: str, body: bytes, now_ms: int
    ) -> None:
        """Store an event the relay made itself (a subscription test), already fanned out."""
        meta = _event_meta(source, event_type, now_ms, "application/json", {}, None, len(body))
        expire_at = now_ms + self.retention_ms
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(Keys.event(event_id), meta, pxat=expire_at)
            pipe.set(Keys.event_body(event_id), body, pxat=expire_at)
            pipe.zadd(Keys.events, {event_id: 0})
            pipe.zadd(Keys.source_events(source), {event_id: 0})
            pipe.sadd(Keys.indexes, Keys.source_events(source))
            await pipe.execute()

    @staticmethod
    def _event_from(event_id: str, meta: bytes | None, unfanned: object) -> Event | None:
        if meta is None:
            return None
        return Event(id=event_id, fanned_out=unfanned is None, **orjson.loads(meta))

    async def get_event(self, event_id: str) -> Event | None:
        found = await self.get_events([event_id])
        return found[0] if found else None

    async def get_events(self, ids: Sequence[str]) -> list[Event]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id in ids:
                pipe.get(Keys.event(event_id))
                pipe.zscore(Keys.unfanned, event_id)
            rows = await pipe.execute()
        found = (self._event_from(i, rows[2 * n], rows[2 * n + 1]) for n, i in enumerate(ids))
        return [e for e in found if e is not None]

    async def get_event_body(self, event_id: str) -> tuple[bytes, str] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(Keys.event(event_id))
            pipe.get(Keys.event_body(event_id))
            meta, body = await pipe.execute()
        if meta is None or body is None:
            return None
        content_type: str = orjson.loads(meta)["content_type"]
        return body, content_type

    async def event_delivery_ids(self, event_id: str) -> list[str]:
        ids = await _r(self.redis.lrange(Keys.event_deliveries(event_id), 0, -1))
        return [i.decode() for i in ids]

    async def unfanned_before(self, cutoff_ms: int, limit: int) -> list[str]:
        ids = await _r(
            self.redis.zrangebyscore(Keys.unfanned, "-inf", cutoff_ms, start=0, num=limit)
        )
        return [i.decode() for i in ids]

    async def add_deliveries(
        self, event_id: str, now_ms: int, deliveries: Sequence[NewDelivery], *, fan_out: bool
    ) -> bool:
        """Record new deliveries of an event in one step.

        With ``fan_out`` this is the event's one fan-out: it also marks the event fanned out,
        and does nothing (False) if that already happened. Without it (a replay) it only
        needs the event to still exist.
        """
        expire_at = now_ms + self.retention_ms
        keys = [
            Keys.unfanned,
            Keys.event(event_id),
            Keys.event_deliveries(event_id),
            Keys.due,
            Keys.deliveries,
            Keys.event_body(event_id),
            Keys.indexes,
        ]
        args: list[str | int | bytes] = [event_id, now_ms, "1" if fan_out else "0", expire_at]
        for d in deliveries:
            keys += [Keys.delivery(d.id), Keys.sub_deliveries(d.subscription_id)]
            fields = {
                "event_id": event_id,
                "subscription_id": d.subscription_id,
                "mode": d.mode.value,
                "status": DeliveryStatus.PENDING.value,
                "attempts": "0",
                "retry_base": "0",
                "created_at": str(now_ms),
                "updated_at": str(now_ms),
                "next_attempt_at": str(d.due_ms),
                "expires_at": str(expire_at),
            }
            args += [d.id, d.due_ms, _dumps(fields)]
        added = int(await self._add_deliveries(keys=keys, args=args))
        if added < 0:
            raise NotFannedOut(event_id)
        return bool(added)

    # --- deliveries ------------------------------------------------------------------------

    _DELIVERY_FIELDS = (
        "event_id",
        "subscription_id",
        "mode",
        "status",
        "attempts",
        "created_at",
        "updated_at",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "retry_base",
        "retry_started_at",
        "first_attempt_at",
        "gen",
    )

    def _delivery_from(
        self, delivery_id: str, row: Sequence[bytes | None]
    ) -> tuple[Delivery, RetryWindow] | None:
        data = dict(zip(self._DELIVERY_FIELDS, row, strict=True))
        if data["event_id"] is None:
            return None
        delivery = Delivery(
            id=delivery_id,
            event_id=_s(data["event_id"]) or "",
            subscription_id=_s(data["subscription_id"]) or "",
            mode=DeliveryMode(_s(data["mode"]) or DeliveryMode.RELIABLE),
            status=DeliveryStatus(_s(data["status"]) or DeliveryStatus.PENDING),
            attempts=_int(data["attempts"]) or 0,
            created_at=_int(data["created_at"]) or 0,
            updated_at=_int(data["updated_at"]) or 0,
            next_attempt_at=_int(data["next_attempt_at"]),
            last_status_code=_int(data["last_status_code"]),
            last_error=_s(data["last_error"]) or None,
        )
        window = RetryWindow(
            base_attempts=_int(data["retry_base"]) or 0,
            started_at=_int(data["retry_started_at"]) or _int(data["first_attempt_at"]),
            generation=_int(data["gen"]) or 0,
        )
        return delivery, window

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        row = await _r(self.redis.hmget(Keys.delivery(delivery_id), list(self._DELIVERY_FIELDS)))
        found = self._delivery_from(delivery_id, row)
        return None if found is None else found[0]

    async def get_deliveries(self, ids: Sequence[str]) -> list[Delivery]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hmget(Keys.delivery(delivery_id), list(self._DELIVERY_FIELDS))
            rows = await pipe.execute()
        found = (self._delivery_from(i, row) for i, row in zip(ids, rows, strict=True))
        return [f[0] for f in found if f is not None]

    async def get_attempts(self, delivery_id: str) -> list[Attempt]:
        raw = await _r(self.redis.lrange(Keys.attempts(delivery_id), 0, -1))
        return [Attempt.model_validate_json(a) for a in raw]

    async def delivery_owner(self, delivery_id: str) -> tuple[str, str] | None:
        """The subscription and event a delivery belongs to (None: no such delivery)."""
        sub_id, event_id = await _r(
            self.redis.hmget(Keys.delivery(delivery_id), ["subscription_id", "event_id"])
        )
        if sub_id is None or event_id is None:
            return None
        return sub_id.decode(), event_id.decode()

    async def claim(
        self,
        delivery_id: str,
        subscription_id: str,
        attempt: int,
        now_ms: int,
        lease_until_ms: int,
        *,
        ignore_pause: bool = False,
    ) -> ClaimStatus:
        """Take attempt ``attempt`` of a delivery, unless it is done, taken, out of date or
        its subscription is paused (then it is parked until resume)."""
        status: bytes = await self._claim(
            keys=[
                Keys.delivery(delivery_id),
                Keys.due,
                Keys.sub(subscription_id),
                Keys.paused(subscription_id),
            ],
            args=[delivery_id, attempt, now_ms, lease_until_ms, "1" if ignore_pause else "0"],
        )
        return status.decode()  # type: ignore[return-value]

    async def load_context(self, delivery_id: str) -> DeliveryContext | None:
        row = await _r(self.redis.hmget(Keys.delivery(delivery_id), list(self._DELIVERY_FIELDS)))
        found = self._delivery_from(delivery_id, row)
        if found is None:
            return None
        delivery, window = found
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(Keys.event(delivery.event_id))
            pipe.get(Keys.event_body(delivery.event_id))
            pipe.hmget(Keys.sub(delivery.subscription_id), list(_SUB_FIELDS))
            meta, body, sub_row = await pipe.execute()
        # A delivery exists only after fan-out, so the event is fanned out.
        event = self._event_from(delivery.event_id, meta, None)
        if event is None:
            return None
        return DeliveryContext(
            delivery=delivery,
            window=window,
            event=event,
            body=body or b"",
            subscription=self._sub_from(sub_row),
        )

    async def record_attempt(
        self,
        *,
        delivery: Delivery,
        attempt: Attempt,
        due_ms: int | None,
        now_ms: int,
        disable_reason: str | None = None,
        dead_letter: bool = True,
        disable_after_failing_ms: int = 0,
    ) -> Recorded | None:
        """Append an attempt and move the delivery to its new status in one step.

        ``due_ms`` is when the delivery next needs attention. A failed attempt counts towards
        disabling a subscription that has failed for ``disable_after_failing_ms`` (0: it does
        not count); a success resets that clock. None when another run recorded this attempt
        first.
        """

        recorded = await self._record(
            keys=[
                Keys.delivery(delivery.id),
                Keys.attempts(delivery.id),
                Keys.due,
                Keys.dead,
                Keys.sub(delivery.subscription_id),
                Keys.sub_dead(delivery.subscription_id),
                Keys.indexes,
            ],
            args=[
                delivery.id,
                attempt.number,
                attempt.model_dump_json(),
                attempt.outcome.value,
                "" if due_ms is None else due_ms,
                now_ms,
                "" if attempt.next_attempt_at is None else attempt.next_attempt_at,
                "" if attempt.status_code is None else attempt.status_code,
                attempt.error or "",
                disable_reason or "",
                "1" if dead_letter else "0",
                disable_after_failing_ms,
                f"every attempt failed for {_duration(disable_after_failing_ms)}",
            ],
        )
        if not int(recorded[0]):
            return None
        return Recorded(disabled=recorded[1].decode() or None)

    async def reopen(
        self, delivery_id: str, subscription_id: str, now_ms: int, *, only_dead: bool
    ) -> tuple[int, int] | Reopened:
        """Make a delivery due now with a fresh retry window.

        Returns its attempts so far and its new generation, or why it could not.
        """
        result = await self._reopen(
            keys=[Keys.delivery(delivery_id), Keys.due, Keys.dead, Keys.sub_dead(subscription_id)],
            args=[delivery_id, now_ms, "1" if only_dead else "0"],
        )
        if int(result[0]) < 0:
            return Reopened(int(result[0]))
        return int(result[0]), int(result[1])

    async def due_before(self, cutoff_ms: int, limit: int) -> list[Due]:
        """Live deliveries due by ``cutoff_ms``, oldest due first.

        Ids whose record has expired are dropped from the due index on the way.
        """
        raw = await _r(self.redis.zrangebyscore(Keys.due, "-inf", cutoff_ms, start=0, num=limit))
        return await self.due_rows([i.decode() for i in raw])

    async def due_rows(self, ids: Sequence[str]) -> list[Due]:
        """What it takes to queue these deliveries, in the order given; ids whose record
        has expired are dropped from the due index on the way."""
        if not ids:
            return []
        fields = ["attempts", "subscription_id", "event_id", "gen"]
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hmget(Keys.delivery(delivery_id), fields)
            rows = await pipe.execute()
        gone = [i for i, row in zip(ids, rows, strict=True) if row[0] is None]
        if gone:
            await _r(self.redis.zrem(Keys.due, *gone))
        return [
            Due(i, int(row[0]), row[1].decode(), row[2].decode(), int(row[3] or 0))
            for i, row in zip(ids, rows, strict=True)
            if row[0] is not None
        ]

    # --- listing, counting and retention ---------------------------------------------------

    async def page(
        self,
        index: str,
        prefix: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        cursor: str | None = None,
        count: int,
        oldest_first: bool = False,
    ) -> Page:
        """Ids from a lexical index, newest first (or oldest), ``count`` at most, after
        ``cursor``."""
        low, high = _lex_range(prefix, since_ms, until_ms)
        if oldest_first:
            if cursor:
                low = "(" + cursor if low == "-" or cursor > low[1:] else low
            raw = await _r(self.redis.zrangebylex(index, low, high, start=0, num=count))
        else:
            if cursor:
                high = "(" + cursor if high == "+" or cursor < high[1:] else high
            raw = await _r(self.redis.zrevrangebylex(index, high, low, start=0, num=count))
        ids = [i.decode() for i in raw]
        return Page(ids, ids[-1] if len(ids) == count else None)

    async def count(
        self, index: str, prefix: str, since_ms: int | None = None, until_ms: int | None = None
    ) -> int:
        low, high = _lex_range(prefix, since_ms, until_ms)
        total: int = await _r(self.redis.zlexcount(index, low, high))  # type: ignore[no-untyped-call]
        return total

    async def forget_dead(self, deliveries: Sequence[Delivery]) -> int:
        """Take deliveries out of the dead-letter indexes (their records stay until expiry)."""
        if not deliveries:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:
            for d in deliveries:
                pipe.zrem(Keys.dead, d.id)
                pipe.zrem(Keys.sub_dead(d.subscription_id), d.id)
            removed = await pipe.execute()
        return sum(int(n) for n in removed[::2])

    async def trim_indexes(self, now_ms: int) -> int:
        """Drop index entries older than the retention period; their records expired."""
        cutoff_events = "(" + id_bound("evt", now_ms - self.retention_ms, upper=False)
        cutoff_deliveries = "(" + id_bound("dlv", now_ms - self.retention_ms, upper=False)
        registered = sorted(k.decode() for k in await _r(self.redis.smembers(Keys.indexes)))
        indexes = [Keys.events, Keys.deliveries, Keys.dead, *registered]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in indexes:
                cutoff = cutoff_events if ":events" in key else cutoff_deliveries
                pipe.zremrangebylex(key, "-", cutoff)
                pipe.zcard(key)
            pipe.zremrangebyscore(Keys.unfanned, "-inf", now_ms - self.retention_ms)
            results = await pipe.execute()
        empty = [k for k, n in zip(indexes, results[1:-1:2], strict=True) if n == 0]
        forget = [k for k in empty if k in registered]
        if forget:
            await self._forget_empty(keys=[Keys.indexes, *forget])
        return sum(int(n) for n in results[0:-1:2]) + int(results[-1])

    # --- workers ---------------------------------------------------------------------------

    async def heartbeat(self, worker_id: str, now_ms: int, stale_after_ms: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(Keys.workers, {worker_id: now_ms})
            pipe.zremrangebyscore(Keys.workers, "-inf", now_ms - 10 * stale_after_ms)
            await pipe.execute()

    async def forget_worker(self, worker_id: str) -> None:
        await _r(self.redis.zrem(Keys.workers, worker_id))

    async def live_workers(self, now_ms: int, stale_after_ms: int) -> int:
        live: int = await _r(self.redis.zcount(Keys.workers, now_ms - stale_after_ms, "+inf"))
        return live

    async def queue_depth(self, now_ms: int) -> dict[str, int]:
        """Deliveries due now, scheduled for later, and dead."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(Keys.due, "-inf", now_ms)
            pipe.zcount(Keys.due, f"({now_ms}", "+inf")
            pipe.zcard(Keys.dead)
            due, later, dead = await pipe.execute()
        return {"due": int(due), "scheduled": int(later), "dead": int(dead)}
