"""Putting deliveries on the road: fan-out and replay.

Fan-out turns stored events into one delivery per matching subscription. The API's
background tasks hand their events to a :class:`FanoutBatcher`, which commits the events
accepted within a few milliseconds in one Lua step; the worker's recovery cron fans out
events whose background task never ran. Whoever commits first wins; the other finds the
event already fanned out and does nothing.

Subscriptions are cached per process and planned against their revision (``subs:rev``):
the fan-out script refuses a plan made on subscriptions that changed since, and the plan is
made again on fresh ones, so a cached subscription is never used after it changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import structlog

from relay.delivery.connection import UNAVAILABLE
from relay.domain.clock import now_ms
from relay.domain.filters import EventFacts
from relay.domain.ids import new_id
from relay.domain.matching import ANY_SOURCE, wants
from relay.domain.models import DeliveryMode, Subscription, UnusableSubscription
from relay.storage import (
    DeliveryContext,
    NewDeliveries,
    NewDelivery,
    NotFannedOut,
    StaleSubscriptions,
    Store,
    UnusableRecord,
)

log = structlog.get_logger("relay.dispatch")
# A batch whose fan-out met Redis away is tried again for this long, then left to the cron.
_OUTAGE_RETRY_FIRST_S, _OUTAGE_RETRY_FOR_S = 0.25, 20.0


class UnknownSubscription(LookupError):
    """No subscription has this id."""


@dataclass(frozen=True, slots=True)
class EventRef:
    """What planning needs of an event; the ingest path has it without asking Redis."""

    id: str
    source: str
    event_type: str | None
    headers: Mapping[str, str] = field(default_factory=dict)  # the stored headers
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Planned:
    event_id: str
    deliveries: list[NewDelivery]
    # Subscriptions that want the event's source and type but whose filter did not match it:
    # (id, the condition that failed), kept with the event.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Once committed: the deliveries put in flight for the caller, ready to attempt.
    inline: list[DeliveryContext] = field(default_factory=list)


class SubscriptionCache:
    """Every subscription, read again only when ``subs:rev`` has moved.

    A stored subscription this version cannot use is set aside (and logged once per read),
    so that it costs its own deliveries only, never those of the others on its sources."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rev: str | None = None
        self._subs: list[Subscription] = []
        self.unusable: list[UnusableSubscription] = []

    async def current(self, *, refresh: bool = False) -> tuple[str, list[Subscription]]:
        if refresh or self._rev is None:
            # The revision first: subscriptions read after it are at least that new, so a
            # change in between makes the plan stale rather than silently old.
            rev = await self._store.subscriptions.revision()
            found = await self._store.subscriptions.all()
            self._subs = [s for s in found if isinstance(s, Subscription)]
            self.unusable = [s for s in found if isinstance(s, UnusableSubscription)]
            for bad in self.unusable:
                log.error("fanout.subscription_unusable", subscription_id=bad.id,
                          sources=bad.sources, problem=bad.problem)  # fmt: skip
            self._rev = rev
        return self._rev, self._subs

    def unusable_for(self, source: str) -> list[str]:
        """Unusable subscriptions that may have wanted an event of ``source`` (all of them
        when their sources cannot be read)."""
        return [
            s.id
            for s in self.unusable
            if not s.sources or source in s.sources or ANY_SOURCE in s.sources
        ]

    async def fresh(self) -> list[Subscription]:
        """Every subscription as of now: read again only when the revision has moved."""
        rev = await self._store.subscriptions.revision()
        return (await self.current(refresh=rev != self._rev))[1]


def plan(
    event: EventRef,
    subscriptions: Sequence[Subscription],
    now: int,
    *,
    inline_lease_ms: int | None = None,
    mode: DeliveryMode | None = None,
    match: bool = True,
) -> Planned:
    """One delivery per subscription that wants the event (every one given, without
    ``match``), in its own mode or in ``mode``. With ``inline_lease_ms`` the caller attempts
    best-effort deliveries itself, under a lease that long."""
    deliveries = []
    skipped: list[tuple[str, str]] = []
    facts: EventFacts | None = None  # made, and the body parsed, only if a filter asks
    for sub in subscriptions:
        if match and not wants(sub, event.source, event.event_type):
            continue
        if match and sub.filter is not None:
            facts = facts or EventFacts(event.headers, event.body)
            failed = sub.filter.check(facts)
            if failed is not None:
                skipped.append((sub.id, failed))
                continue
        sub_mode = mode or sub.mode
        inline = inline_lease_ms is not None and sub_mode is DeliveryMode.BEST_EFFORT
        deliveries.append(
            NewDelivery(
                id=new_id("dlv", now),
                subscription_id=sub.id,
                mode=sub_mode,
                due_ms=now + inline_lease_ms if inline and inline_lease_ms else now,
                inline=inline,
                # A best-effort delivery has one attempt: there is no order to keep.
                ordering_key=None
                if sub_mode is DeliveryMode.BEST_EFFORT
                else sub.ordering_key(dict(event.headers), event.body),
            )
        )
    return Planned(event.id, deliveries, skipped)


async def fan_out(
    store: Store,
    cache: SubscriptionCache,
    events: Sequence[EventRef],
    *,
    inline_lease_ms: int | None = None,
) -> list[Planned | None]:
    """Create the deliveries of these events in one step; None for an event fanned out
    already (or gone)."""
    refresh = False
    for _ in range(5):
        rev, subs = await cache.current(refresh=refresh)
        now = now_ms()
        planned = [plan(e, subs, now, inline_lease_ms=inline_lease_ms) for e in events]
        batch = [NewDeliveries(p.event_id, p.deliveries, p.skipped) for p in planned]
        try:
            added = await store.deliveries.add(batch, now, fan_out=True, subs_rev=rev)
        except StaleSubscriptions:
            refresh = True
            continue
        inline: dict[str, list[DeliveryContext]] = {}
        for ctx in added.inline:
            inline.setdefault(ctx.event.id, []).append(ctx)
        done = [
            replace(p, inline=inline.get(p.event_id, [])) if ok == 1 else None
            for p, ok in zip(planned, added.verdicts, strict=True)
        ]
        for p, event in zip(done, events, strict=True):
            if p is None:
                continue
            unusable = cache.unusable_for(event.source)
            # One line per webhook at INFO (ingest.accepted; the deliveries log their own):
            # this one only when a subscription could not be used.
            level = log.info if unusable else log.debug
            level("fanout.completed", event_id=p.event_id, source=event.source,
                  event_type=event.event_type, deliveries=len(p.deliveries),
                  skipped=len(p.skipped),
                  **({"unusable": unusable} if unusable else {}))  # fmt: skip
        return done
    raise RuntimeError("subscriptions keep changing under fan-out")


async def stored_event(store: Store, event_id: str) -> EventRef | None:
    """An event as planning needs it, read back from Redis (recovery, replay)."""
    event = await store.events.get(event_id)
    found = await store.events.body(event_id)
    if event is None or found is None:
        return None
    return EventRef(event.id, event.source, event.event_type, event.headers, found[0])


async def replay(
    store: Store, event_id: str, subscription_ids: Sequence[str] | None
) -> list[NewDelivery] | None:
    """New reliable deliveries of a stored event: to the subscriptions named, or to every
    current subscription that matches it. None when the event no longer exists."""
    event = await stored_event(store, event_id)
    if event is None:
        return None
    if subscription_ids is None:
        current = await store.subscriptions.for_source(event.source)
        subs = [s for s in current if isinstance(s, Subscription)]
    else:
        wanted = dict.fromkeys(subscription_ids)
        found = [await store.subscriptions.get(sub_id) for sub_id in wanted]
        subs = [s for s in found if isinstance(s, Subscription)]
        for sub_id, sub in zip(wanted, found, strict=True):
            if sub is None:
                raise UnknownSubscription(sub_id)
            if isinstance(sub, UnusableSubscription):
                raise UnusableRecord(sub)
    now = now_ms()
    # Named subscriptions get the event whatever their filters say.
    planned = plan(event, subs, now, mode=DeliveryMode.RELIABLE, match=subscription_ids is None)
    added = await store.deliveries.add(
        [NewDeliveries(event_id, planned.deliveries, planned.skipped)], now, fan_out=False
    )
    [verdict] = added.verdicts
    if verdict < 0:
        raise NotFannedOut(event_id)
    if verdict == 0:
        return None
    log.info("event.replayed", event_id=event_id, deliveries=len(planned.deliveries))
    return planned.deliveries


AfterCommit = Callable[[Planned], Awaitable[None]]


class FanoutBatcher:
    """Fans out, in one Lua step, the events accepted within ``window_s`` of each other.

    ``submit`` returns once its event's fan-out is committed (then ``after_commit`` has run
    for it: the API makes its best-effort attempts there). A failed commit is logged and
    left to the recovery cron: the events are safe in Redis.

    Batches commit one at a time, in the order they were formed: the first event of a lane
    is the first to enter it, which FIFO subscriptions rely on. Committed side by side, a
    batch that had to plan again (its subscriptions changed: always the case for the first
    events after a subscription is made) let later events take the heads of their keys.
    """

    def __init__(
        self,
        store: Store,
        cache: SubscriptionCache,
        *,
        window_s: float,
        max_batch: int,
        inline_lease_ms: int,
        after_commit: AfterCommit,
    ) -> None:
        self._store = store
        self._cache = cache
        self._window_s = window_s
        self._max_batch = max_batch
        self._inline_lease_ms = inline_lease_ms
        self._after_commit = after_commit
        self._batch: list[EventRef] = []
        self._done: asyncio.Future[dict[str, Planned | None]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        # asyncio.Lock wakes its waiters first come, first served: commits keep flush order.
        self._turn = asyncio.Lock()

    async def submit(self, event: EventRef) -> None:
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = loop.create_future()
            self._timer = loop.call_later(self._window_s, self._flush)
        done = self._done
        self._batch.append(event)
        if len(self._batch) >= self._max_batch:
            self._flush()
        planned = (await asyncio.shield(done)).get(event.id)
        if planned is not None:
            await self._after_commit(planned)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        batch, done = self._batch, self._done
        self._batch, self._done, self._timer = [], None, None
        if done is None:
            return
        task = asyncio.get_running_loop().create_task(self._commit(batch, done))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _commit(
        self, batch: list[EventRef], done: asyncio.Future[dict[str, Planned | None]]
    ) -> None:
        try:
            async with self._turn:
                planned = await self._fan_out_through_outages(batch)
        except Exception:
            # The events are safe in Redis; the worker's recovery cron fans them out later.
            for event in batch:
                log.exception("fanout.failed", event_id=event.id)
            done.set_result({})
            return
        done.set_result({e.id: p for e, p in zip(batch, planned, strict=True)})

    async def _fan_out_through_outages(self, batch: list[EventRef]) -> list[Planned | None]:
        # Events accepted just before Redis went away would otherwise wait for the recovery
        # cron's grace period (RELAY_FANOUT_GRACE_S, 30 s) after it came back. Fanning out
        # twice is harmless (the second finds the events done), so the cron may overlap.
        delay, waited = _OUTAGE_RETRY_FIRST_S, 0.0
        while True:
            try:
                return await fan_out(
                    self._store, self._cache, batch, inline_lease_ms=self._inline_lease_ms
                )
            except UNAVAILABLE:
                if waited + delay > _OUTAGE_RETRY_FOR_S:
                    raise
                await asyncio.sleep(delay)
                waited += delay
                delay = min(2 * delay, 2.0)

    async def close(self) -> None:
        """Commit what is waiting (shutdown): nothing accepted waits for the cron."""
        self._flush()
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
