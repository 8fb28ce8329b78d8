"""Deliveries: one event on its way to one subscription (``dlv:{id}``, its attempts and the
due, dead and paused indexes). Each status change is one script (see :mod:`.keys`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from redis.asyncio import Redis

from relay.domain.failing import FailingUpdate
from relay.domain.models import Attempt, Delivery, DeliveryMode, DeliveryStatus, Event, Subscription
from relay.storage import subscriptions
from relay.storage.codec import LexIndex, Page, TimeRange, dumps, integer, r, text
from relay.storage.events import event_from
from relay.storage.keys import Keys
from relay.storage.scripts import (
    AddDeliveries,
    Claim,
    NewDeliveryRow,
    RecordAttempt,
    Reopen,
    Scripts,
)

ClaimStatus = Literal["ok", "missing", "terminal", "stale", "busy", "paused"]


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
    failing_since: int | None  # the subscription's failing clock (relay.domain.failing)


class NotFannedOut(Exception):
    """A replay was asked for before the event's own fan-out: it would deliver it twice."""


class AlreadyRecorded(Exception):
    """Another run recorded this attempt first (its claim had expired)."""


class Reopened(Enum):
    MISSING = -1
    NOT_DEAD = -2
    IN_FLIGHT = -3


_FIELDS = (
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


def _from_row(delivery_id: str, row: Sequence[bytes | None]) -> tuple[Delivery, RetryWindow] | None:
    data = dict(zip(_FIELDS, row, strict=True))
    if data["event_id"] is None:
        return None
    delivery = Delivery(
        id=delivery_id,
        event_id=text(data["event_id"]) or "",
        subscription_id=text(data["subscription_id"]) or "",
        mode=DeliveryMode(text(data["mode"]) or DeliveryMode.RELIABLE),
        status=DeliveryStatus(text(data["status"]) or DeliveryStatus.PENDING),
        attempts=integer(data["attempts"]) or 0,
        created_at=integer(data["created_at"]) or 0,
        updated_at=integer(data["updated_at"]) or 0,
        next_attempt_at=integer(data["next_attempt_at"]),
        last_status_code=integer(data["last_status_code"]),
        last_error=text(data["last_error"]) or None,
    )
    window = RetryWindow(
        base_attempts=integer(data["retry_base"]) or 0,
        started_at=integer(data["retry_started_at"]) or integer(data["first_attempt_at"]),
        generation=integer(data["gen"]) or 0,
    )
    return delivery, window


class DeliveryStore:
    def __init__(self, redis: Redis, scripts: Scripts, retention_ms: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._retention_ms = retention_ms
        self._index = LexIndex(redis, "dlv")

    # --- creating ------------------------------------------------------------------------

    async def add(
        self, event_id: str, now_ms: int, deliveries: Sequence[NewDelivery], *, fan_out: bool
    ) -> bool:
        """Record new deliveries of an event in one step.

        With ``fan_out`` this is the event's one fan-out: it also marks the event fanned out,
        and does nothing (False) if that already happened. Without it (a replay) it only
        needs the event to still exist.
        """
        expire_at = now_ms + self._retention_ms
        rows = [
            NewDeliveryRow(
                delivery_key=Keys.delivery(d.id),
                sub_deliveries_key=Keys.sub_deliveries(d.subscription_id),
                delivery_id=d.id,
                due_ms=d.due_ms,
                fields=dumps(
                    {
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
                ),
            )
            for d in deliveries
        ]
        added = int(
            await self._scripts.run(
                AddDeliveries(
                    unfanned_key=Keys.unfanned,
                    event_key=Keys.event(event_id),
                    event_deliveries_key=Keys.event_deliveries(event_id),
                    due_key=Keys.due,
                    all_deliveries_key=Keys.deliveries,
                    body_key=Keys.event_body(event_id),
                    indexes_key=Keys.indexes,
                    event_id=event_id,
                    now_ms=now_ms,
                    fan_out=fan_out,
                    expire_at_ms=expire_at,
                    rows=rows,
                )
            )
        )
        if added < 0:
            raise NotFannedOut(event_id)
        return bool(added)

    # --- reading -------------------------------------------------------------------------

    async def get(self, delivery_id: str) -> Delivery | None:
        row = await r(self._redis.hmget(Keys.delivery(delivery_id), list(_FIELDS)))
        found = _from_row(delivery_id, row)
        return None if found is None else found[0]

    async def get_many(self, ids: Sequence[str]) -> list[Delivery]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hmget(Keys.delivery(delivery_id), list(_FIELDS))
            rows = await pipe.execute()
        found = (_from_row(i, row) for i, row in zip(ids, rows, strict=True))
        return [f[0] for f in found if f is not None]

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        raw = await r(self._redis.lrange(Keys.attempts(delivery_id), 0, -1))
        return [Attempt.model_validate_json(a) for a in raw]

    async def owner(self, delivery_id: str) -> tuple[str, str] | None:
        """The subscription and event a delivery belongs to (None: no such delivery)."""
        sub_id, event_id = await r(
            self._redis.hmget(Keys.delivery(delivery_id), ["subscription_id", "event_id"])
        )
        if sub_id is None or event_id is None:
            return None
        return sub_id.decode(), event_id.decode()

    async def page(
        self,
        window: TimeRange,
        count: int,
        *,
        subscription_id: str | None = None,
        dead: bool = False,
        oldest_first: bool = False,
    ) -> Page:
        """Delivery ids newest first (or oldest): all, of one subscription, or dead ones."""
        if dead:
            index = Keys.dead_letters(subscription_id)
        else:
            index = Keys.sub_deliveries(subscription_id) if subscription_id else Keys.deliveries
        return await self._index.page(index, window, count, oldest_first=oldest_first)

    async def count_dead(self, window: TimeRange, subscription_id: str | None = None) -> int:
        return await self._index.count(Keys.dead_letters(subscription_id), window)

    # --- one attempt: claim, context, record -----------------------------------------------

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
        status: bytes = await self._scripts.run(
            Claim(
                delivery_key=Keys.delivery(delivery_id),
                due_key=Keys.due,
                sub_key=Keys.sub(subscription_id),
                paused_key=Keys.paused(subscription_id),
                delivery_id=delivery_id,
                attempt=attempt,
                now_ms=now_ms,
                lease_until_ms=lease_until_ms,
                ignore_pause=ignore_pause,
            )
        )
        return status.decode()  # type: ignore[return-value]

    async def context(self, delivery_id: str) -> DeliveryContext | None:
        row = await r(self._redis.hmget(Keys.delivery(delivery_id), list(_FIELDS)))
        found = _from_row(delivery_id, row)
        if found is None:
            return None
        delivery, window = found
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(Keys.event(delivery.event_id))
            pipe.get(Keys.event_body(delivery.event_id))
            pipe.hmget(Keys.sub(delivery.subscription_id), list(subscriptions.FIELDS))
            pipe.get(Keys.sub_failing(delivery.subscription_id))
            meta, body, sub_row, failing = await pipe.execute()
        # A delivery exists only after fan-out, so the event is fanned out.
        event = event_from(delivery.event_id, meta, None)
        if event is None:
            return None
        return DeliveryContext(
            delivery=delivery,
            window=window,
            event=event,
            body=body or b"",
            subscription=subscriptions.from_fields(sub_row),
            failing_since=integer(failing),
        )

    async def record(
        self,
        ctx: DeliveryContext,
        attempt: Attempt,
        *,
        now_ms: int,
        disable_reason: str | None,
        dead_letter: bool,
        failing: FailingUpdate,
        failing_limit_ms: int,
        failing_reason: str,
    ) -> str | None:
        """Append an attempt and move the delivery to its outcome in one step, with the
        subscription's failing clock; returns why this attempt disabled the subscription,
        if it did. Raises :class:`AlreadyRecorded` when another run recorded it first."""
        delivery = ctx.delivery
        sub_id = delivery.subscription_id
        recorded = await self._scripts.run(
            RecordAttempt(
                delivery_key=Keys.delivery(delivery.id),
                attempts_key=Keys.attempts(delivery.id),
                due_key=Keys.due,
                dead_key=Keys.dead,
                sub_key=Keys.sub(sub_id),
                sub_dead_key=Keys.sub_dead(sub_id),
                indexes_key=Keys.indexes,
                failing_key=Keys.sub_failing(sub_id),
                delivery_id=delivery.id,
                number=attempt.number,
                attempt_json=attempt.model_dump_json(),
                status=attempt.outcome.value,
                due_ms=attempt.next_attempt_at,
                now_ms=now_ms,
                next_attempt_at=attempt.next_attempt_at,
                status_code=attempt.status_code,
                error=attempt.error,
                dead_letter=dead_letter,
                disable_reason=disable_reason,
                failing=failing.action,
                failing_seen=ctx.failing_since,
                failing_since=failing.since_ms,
                failing_ttl_ms=failing_limit_ms,
                failing_disable=failing_reason if failing.disable else None,
            )
        )
        if not int(recorded[0]):
            raise AlreadyRecorded(delivery.id)
        return recorded[1].decode() or None

    # --- back on the road ----------------------------------------------------------------

    async def reopen(
        self, delivery_id: str, subscription_id: str, now_ms: int, *, only_dead: bool
    ) -> tuple[int, int] | Reopened:
        """Make a delivery due now with a fresh retry window.

        Returns its attempts so far and its new generation, or why it could not.
        """
        result = await self._scripts.run(
            Reopen(
                delivery_key=Keys.delivery(delivery_id),
                due_key=Keys.due,
                dead_key=Keys.dead,
                sub_dead_key=Keys.sub_dead(subscription_id),
                delivery_id=delivery_id,
                now_ms=now_ms,
                only_dead=only_dead,
            )
        )
        if int(result[0]) < 0:
            return Reopened(int(result[0]))
        return int(result[0]), int(result[1])

    async def due_before(self, cutoff_ms: int, limit: int) -> list[Due]:
        """Live deliveries due by ``cutoff_ms``, oldest due first.

        Ids whose record has expired are dropped from the due index on the way.
        """
        raw = await r(self._redis.zrangebyscore(Keys.due, "-inf", cutoff_ms, start=0, num=limit))
        return await self.due_rows([i.decode() for i in raw])

    async def due_rows(self, ids: Sequence[str]) -> list[Due]:
        """What it takes to queue these deliveries, in the order given; ids whose record
        has expired are dropped from the due index on the way."""
        if not ids:
            return []
        fields = ["attempts", "subscription_id", "event_id", "gen"]
        async with self._redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hmget(Keys.delivery(delivery_id), fields)
            rows = await pipe.execute()
        gone = [i for i, row in zip(ids, rows, strict=True) if row[0] is None]
        if gone:
            await r(self._redis.zrem(Keys.due, *gone))
        return [
            Due(i, int(row[0]), row[1].decode(), row[2].decode(), int(row[3] or 0))
            for i, row in zip(ids, rows, strict=True)
            if row[0] is not None
        ]

    async def forget_dead(self, deliveries: Sequence[Delivery]) -> int:
        """Take deliveries out of the dead-letter indexes (their records stay until expiry)."""
        if not deliveries:
            return 0
        async with self._redis.pipeline(transaction=True) as pipe:
            for d in deliveries:
                pipe.zrem(Keys.dead, d.id)
                pipe.zrem(Keys.sub_dead(d.subscription_id), d.id)
            removed = await pipe.execute()
        return sum(int(n) for n in removed[::2])
