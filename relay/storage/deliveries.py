"""Deliveries: one event on its way to one subscription (``dlv:{id}``, its attempts, the
listing and dead-letter indexes). Each status change is one script (see :mod:`.keys`);
waiting and in-flight deliveries live in their subscription's lane (:mod:`.lanes`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis

from relay.domain.breaker import CLOSED, NOTHING, Breaker, LaneStep
from relay.domain.failing import FailingUpdate
from relay.domain.models import (
    Attempt,
    Delivery,
    DeliveryMode,
    DeliveryStatus,
    Event,
    Subscription,
    Trigger,
    UnusableSubscription,
)
from relay.storage import subscriptions
from relay.storage.codec import LexIndex, Page, TimeRange, integer, r, text
from relay.storage.events import event_from
from relay.storage.keys import PREFIX, JobQueue, Keys
from relay.storage.ops import OpsContext
from relay.storage.scripts import Fanout, FanoutEvent, FanoutRow, RecordAttempt, Reopen, Scripts
from relay.storage.stats import MINUTE_MS, STATS_TTL_MS


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording an attempt did beyond the delivery: why it disabled the subscription
    (None: it did not), and the operational events it wrote."""

    disabled: str | None
    ops_events: list[str]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    subscription_id: str
    mode: DeliveryMode
    due_ms: int  # or, inline, the end of the caller's lease
    # The caller attempts it at once (best-effort from the API, a subscription test): it is
    # created in flight, and its lane takes it over only if the caller dies first.
    inline: bool = False
    ordering_key: str | None = None  # set for FIFO subscriptions


@dataclass(frozen=True, slots=True)
class NewDeliveries:
    """The deliveries one event gets, as fan-out or a replay plans them."""

    event_id: str
    deliveries: Sequence[NewDelivery]
    # Subscriptions whose filter did not match: (id, the condition that failed).
    skipped: Sequence[tuple[str, str]] = ()
    # A chunk of a fan-out: the cursor it starts from ("": the first) and the one it leaves
    # ("": the last chunk, which completes the fan-out). See fanout.lua.
    after: str = ""
    upto: str = ""


class StaleSubscriptions(Exception):
    """Fan-out was planned on subscriptions that changed since: plan again."""


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
    subscription: Subscription | UnusableSubscription | None
    failing_since: int | None  # the subscription's failing clock (relay.domain.failing)
    trigger: Trigger = Trigger.SCHEDULED  # who asked for this attempt
    breaker: Breaker = CLOSED  # the lane's breaker as the claim saw it


class NotFannedOut(Exception):
    """A replay was asked for before the event's own fan-out: it would deliver it twice."""


class AlreadyRecorded(Exception):
    """Another run recorded this attempt first (its claim had expired)."""


class Reopened(Enum):
    MISSING = -1
    NOT_DEAD = -2
    IN_FLIGHT = -3


FIELDS = (
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
    "ordered",
    "okey",
    "next_trigger",
)


def _from_row(delivery_id: str, row: Sequence[bytes | None]) -> tuple[Delivery, RetryWindow] | None:
    data = dict(zip(FIELDS, row, strict=True))
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
        # Absent until the delivery first changes (fanout.lua writes only what differs).
        updated_at=integer(data["updated_at"]) or integer(data["created_at"]) or 0,
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


def context_from(
    delivery_id: str,
    row: Sequence[bytes | None],
    meta: bytes | None,
    body: bytes | None,
    subscription: Subscription | UnusableSubscription | None,
    failing_since: int | None,
) -> DeliveryContext | None:
    """One attempt's context from a delivery's fields, its event and its subscription."""
    found = _from_row(delivery_id, row)
    if found is None:
        return None
    delivery, window = found
    # A delivery exists only after fan-out, so its event is fanned out.
    event = event_from(delivery.event_id, meta, None)
    if event is None:
        return None
    trigger = Trigger.MANUAL if row[FIELDS.index("next_trigger")] == b"manual" else None
    return DeliveryContext(
        delivery=delivery,
        window=window,
        event=event,
        body=body or b"",
        subscription=subscription,
        failing_since=failing_since,
        trigger=trigger or Trigger.SCHEDULED,
    )


@dataclass(frozen=True, slots=True)
class Added:
    """What :meth:`DeliveryStore.add` did."""

    # Per event: 1 added, 0 fanned out already (or gone), -1 a replay before its fan-out, 2 a
    # chunk whose event's fan-out cursor was elsewhere (nothing written).
    verdicts: list[int]
    # The deliveries put in flight for the caller (``inline``), ready to attempt.
    inline: list[DeliveryContext]


# fanout.lua's reply per inline delivery: id, FIELDS, event metadata and body, then the
# subscription's config, enabled, disabled reason, paused, and its failing clock.
_INLINE_STEP = 1 + len(FIELDS) + 2 + 5


def _inline(reply: Sequence[bytes]) -> list[DeliveryContext]:
    found = []
    for i in range(0, len(reply), _INLINE_STEP):
        delivery_id = reply[i].decode()
        row = [v or None for v in reply[i + 1 : i + 1 + len(FIELDS)]]
        meta, body, config, enabled, reason, paused, failing = reply[i + 1 + len(FIELDS) :
                                                                     i + _INLINE_STEP]  # fmt: skip
        sub_id = (row[1] or b"").decode()
        sub = subscriptions.from_fields(sub_id, [config or None, enabled, reason, paused])
        ctx = context_from(delivery_id, row, meta or None, body, sub, integer(failing))
        if ctx is not None:
            found.append(ctx)
    return found


class DeliveryStore:
    def __init__(self, redis: Redis, scripts: Scripts, retention_ms: int, queue: JobQueue) -> None:
        self._redis = redis
        self._scripts = scripts
        self._retention_ms = retention_ms
        self._queue = queue
        self._index = LexIndex(redis, "dlv")

    # --- creating ------------------------------------------------------------------------

    async def add(
        self,
        batch: Sequence[NewDeliveries],
        now_ms: int,
        *,
        fan_out: bool,
        subs_rev: str = "",
    ) -> Added:
        """Create the deliveries of several events in one step.

        With ``fan_out`` each event's one fan-out happens here: it leaves the unfanned index,
        and an event fanned out already gets nothing (0). ``subs_rev`` is the subscription
        revision the plan was made on: if subscriptions changed since, nothing is written
        and :class:`StaleSubscriptions` is raised; a chunk whose event's cursor is not at its
        ``after`` gets nothing (2). Without ``fan_out`` (a replay) an event only needs to
        exist (0: gone; -1: not fanned out yet). Returns 1/0/-1/2 per event, and the contexts
        of the deliveries put in flight for the caller.
        """
        expire_at = now_ms + self._retention_ms
        events = [
            FanoutEvent(
                event_id=item.event_id,
                rows=[
                    FanoutRow(
                        delivery_id=d.id,
                        sub_id=d.subscription_id,
                        mode=d.mode.value,
                        inline=d.inline,
                        due_ms=d.due_ms,
                        ordered=d.ordering_key is not None,
                        okey=d.ordering_key or "",
                    )
                    for d in item.deliveries
                ],
                skipped=item.skipped,
                after=item.after,
                upto=item.upto,
            )
            for item in batch
        ]
        reply = await self._scripts.run(
            Fanout(
                unfanned_key=Keys.unfanned,
                all_deliveries_key=Keys.deliveries,
                indexes_key=Keys.indexes,
                subs_rev_key=Keys.subs_rev,
                queue_key=self._queue.queue_key,
                prefix=PREFIX,
                job_prefix=self._queue.job_prefix,
                now_ms=now_ms,
                expire_at_ms=expire_at,
                planned_rev=subs_rev,
                fan_out=fan_out,
                events=events,
            )
        )
        if reply[0] == b"stale":
            raise StaleSubscriptions(reply[1].decode())
        n = len(batch)
        return Added([int(v) for v in reply[1 : 1 + n]], _inline(reply[1 + n :]))

    # --- reading -------------------------------------------------------------------------

    async def get(self, delivery_id: str) -> Delivery | None:
        row = await r(self._redis.hmget(Keys.delivery(delivery_id), list(FIELDS)))
        found = _from_row(delivery_id, row)
        return None if found is None else found[0]

    async def get_many(self, ids: Sequence[str]) -> list[Delivery]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hmget(Keys.delivery(delivery_id), list(FIELDS))
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
        within: Sequence[str] | None = None,
        dead: bool = False,
        oldest_first: bool = False,
    ) -> Page:
        """Delivery ids newest first (or oldest): all, of one subscription, of the
        subscriptions ``within`` a token's scope, or dead ones."""
        indexes = self._indexes(subscription_id, within, dead)
        return await self._index.page_union(indexes, window, count, oldest_first=oldest_first)

    async def count_dead(
        self,
        window: TimeRange,
        subscription_id: str | None = None,
        within: Sequence[str] | None = None,
    ) -> int:
        return await self._index.count_union(self._indexes(subscription_id, within, True), window)

    @staticmethod
    def _indexes(sub_id: str | None, within: Sequence[str] | None, dead: bool) -> list[str]:
        if sub_id is not None:
            return [Keys.sub_dead(sub_id) if dead else Keys.sub_deliveries(sub_id)]
        if within is not None:
            return [Keys.sub_dead(s) if dead else Keys.sub_deliveries(s) for s in within]
        return [Keys.dead if dead else Keys.deliveries]

    # --- one attempt: claim, context, record -----------------------------------------------

    async def context(self, delivery_id: str) -> DeliveryContext | None:
        """One delivery's attempt context, read back from Redis."""
        row = await r(self._redis.hmget(Keys.delivery(delivery_id), list(FIELDS)))
        event_id, sub_id = row[0], row[1]
        if event_id is None or sub_id is None:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(Keys.event(event_id.decode()))
            pipe.get(Keys.event_body(event_id.decode()))
            pipe.hmget(Keys.sub(sub_id.decode()), list(subscriptions.FIELDS))
            pipe.get(Keys.sub_failing(sub_id.decode()))
            meta, body, sub_row, failing = await pipe.execute()
        sub = subscriptions.from_fields(sub_id.decode(), sub_row)
        return context_from(delivery_id, row, meta, body, sub, integer(failing))

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
        lane: LaneStep = NOTHING,
        ops: OpsContext | None = None,
    ) -> Recorded:
        """Append an attempt and move the delivery to its outcome in one step: back in its
        lane when another attempt is due, with the lane's step (its breaker and hold) and
        the subscription's failing clock. Returns why this attempt disabled the
        subscription, if it did, and the operational events written about it (with
        ``ops``). Raises :class:`AlreadyRecorded` when another run recorded it first."""
        delivery = ctx.delivery
        sub_id = delivery.subscription_id
        recorded = await self._scripts.run(
            RecordAttempt(
                delivery_key=Keys.delivery(delivery.id),
                attempts_key=Keys.attempts(delivery.id),
                lane_key=Keys.lane(sub_id),
                flight_key=Keys.lane(sub_id, "flight"),
                state_key=Keys.lane(sub_id, "state"),
                dead_key=Keys.dead,
                sub_key=Keys.sub(sub_id),
                sub_dead_key=Keys.sub_dead(sub_id),
                indexes_key=Keys.indexes,
                failing_key=Keys.sub_failing(sub_id),
                subs_rev_key=Keys.subs_rev,
                stats_key=Keys.minute_stats(now_ms // MINUTE_MS),
                prefix=PREFIX,
                sub_id=sub_id,
                delivery_id=delivery.id,
                number=attempt.number,
                # Attempts without a transform keep their former size (32 B less each).
                attempt_json=attempt.model_dump_json(
                    exclude=None if attempt.transform_version else {"transform_version"}
                ),
                status=attempt.outcome.value,
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
                hold_until=lane.hold_until_ms,
                stats_ttl_ms=STATS_TTL_MS,
                ops=None if ops is None else ops.encode(),
                hold_reason=lane.hold_reason,
                counted=lane.counted,
                bucket=lane.bucket,
                transition=lane.transition,
                trips=lane.trips,
            )
        )
        if not int(recorded[0]):
            raise AlreadyRecorded(delivery.id)
        return Recorded(recorded[1].decode() or None, [i.decode() for i in recorded[2:]])

    # --- back on the road ----------------------------------------------------------------

    async def reopen(
        self, delivery_id: str, subscription_id: str, now_ms: int, *, only_dead: bool
    ) -> tuple[int, int] | Reopened:
        """Make a delivery due now in its lane, with a fresh retry window and a manual next
        attempt. Returns its attempts so far and its new generation, or why it could not.
        """
        result = await self._scripts.run(
            Reopen(
                delivery_key=Keys.delivery(delivery_id),
                dead_key=Keys.dead,
                sub_dead_key=Keys.sub_dead(subscription_id),
                queue_key=self._queue.queue_key,
                prefix=PREFIX,
                job_prefix=self._queue.job_prefix,
                sub_id=subscription_id,
                delivery_id=delivery_id,
                now_ms=now_ms,
                only_dead=only_dead,
            )
        )
        if int(result[0]) < 0:
            return Reopened(int(result[0]))
        return int(result[0]), int(result[1])

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
