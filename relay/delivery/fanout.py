"""Putting deliveries on the road: fan-out and replay.

Fan-out turns stored events into one delivery per matching subscription. The API's
background tasks hand their events to a :class:`FanoutBatcher`, which commits the events
accepted within a few milliseconds in one Lua step; the worker's recovery cron fans out
events whose background task never ran. Whoever commits first wins; the other finds the
event already fanned out and does nothing.

Subscriptions are cached per process and planned against their revision (``subs:rev``):
the fan-out script refuses a plan made on subscriptions that changed since, and the plan is
made again on fresh ones, so a cached subscription is never used after it changed.

An event for many subscriptions is fanned out in chunks of at most ``CHUNK_ROWS``
deliveries, one Lua call each, so that no call holds Redis for long (one call for 10,000
subscriptions held it for 0.32 s, and every other source's ingest waited). Subscriptions
are planned in id order and each chunk moves the event's cursor (the last subscription it
covered) in the same step as its deliveries; a fan-out resumed after a crash (the recovery
cron, or the API retrying through an outage) starts after the cursor, so no subscription is
skipped or served twice (see ``fanout.lua``).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from relay.delivery.connection import UNAVAILABLE, describe
from relay.domain.clock import now_ms
from relay.domain.filters import EventFacts
from relay.domain.ids import new_id
from relay.domain.matching import ANY_SOURCE, wants
from relay.domain.models import DeliveryMode, Subscription, UnusableSubscription
from relay.domain.tracecontext import TraceContext
from relay.observability import tracing
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
# Deliveries and filter skips per fan-out call: each costs ~30 us of Lua, so a call holds
# Redis for ~6 ms; 300 took up to 56 ms on a machine loaded six times over its two cores,
# past the 50 ms we allow one step.
CHUNK_ROWS = 200
# Subscriptions looked at per chunk, wanted or not: planning between two calls stays short,
# so the API's event loop serves other requests in between.
_CHUNK_SCAN = 4 * CHUNK_ROWS
# Plans made again (subscriptions changed, or another process moved an event's cursor).
_MAX_ROUNDS = 20


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
    trace: TraceContext | None = None  # the trace context stored with it


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
            # In id order: the order fan-out's chunks and their cursor follow.
            self._subs = sorted((s for s in found if isinstance(s, Subscription)),
                                key=lambda s: s.id)  # fmt: skip
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


class _Planner:
    """Decides, subscription by subscription, what one event gets: a delivery, a filter skip
    (the condition that failed) or nothing. The body is parsed once, if a filter asks."""

    def __init__(
        self,
        event: EventRef,
        now: int,
        *,
        inline_lease_ms: int | None = None,
        mode: DeliveryMode | None = None,
        match: bool = True,
    ) -> None:
        self._event, self._now = event, now
        self._inline_lease_ms, self._mode, self._match = inline_lease_ms, mode, match
        self._facts: EventFacts | None = None

    def one(self, sub: Subscription) -> NewDelivery | tuple[str, str] | None:
        event, now = self._event, self._now
        if self._match and not wants(sub, event.source, event.event_type):
            return None
        if self._match and sub.filter is not None:
            self._facts = self._facts or EventFacts(event.headers, event.body)
            failed = sub.filter.check(self._facts)
            if failed is not None:
                return (sub.id, failed)
        sub_mode = self._mode or sub.mode
        lease = self._inline_lease_ms
        inline = lease is not None and sub_mode is DeliveryMode.BEST_EFFORT
        return NewDelivery(
            id=new_id("dlv", now),
            subscription_id=sub.id,
            mode=sub_mode,
            due_ms=now + lease if inline and lease else now,
            inline=inline,
            # A best-effort delivery has one attempt: there is no order to keep.
            ordering_key=None
            if sub_mode is DeliveryMode.BEST_EFFORT
            else sub.ordering_key(dict(event.headers), event.body),
        )


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
    planner = _Planner(event, now, inline_lease_ms=inline_lease_ms, mode=mode, match=match)
    deliveries: list[NewDelivery] = []
    skipped: list[tuple[str, str]] = []
    for sub in subscriptions:
        got = planner.one(sub)
        if isinstance(got, NewDelivery):
            deliveries.append(got)
        elif got is not None:
            skipped.append(got)
    return Planned(event.id, deliveries, skipped)


def chunks(
    event: EventRef,
    subscriptions: Sequence[Subscription],
    now: int,
    after: str = "",
    *,
    inline_lease_ms: int | None = None,
) -> Iterator[NewDeliveries]:
    """An event's fan-out to ``subscriptions`` (in id order, those after the cursor
    ``after``), in chunks of at most ``CHUNK_ROWS`` deliveries and skips, each planned only
    when the one before has been taken. Every chunk but the last names the cursor it leaves;
    an event with few subscriptions is one chunk."""
    planner = _Planner(event, now, inline_lease_ms=inline_lease_ms)
    deliveries: list[NewDelivery] = []
    skipped: list[tuple[str, str]] = []
    scanned = 0
    for n, sub in enumerate(subscriptions, start=1):
        got = planner.one(sub)
        if isinstance(got, NewDelivery):
            deliveries.append(got)
        elif got is not None:
            skipped.append(got)
        scanned += 1
        full = len(deliveries) + len(skipped) >= CHUNK_ROWS or scanned >= _CHUNK_SCAN
        if full and n < len(subscriptions):
            yield NewDeliveries(event.id, deliveries, skipped, after=after, upto=sub.id)
            after, deliveries, skipped, scanned = sub.id, [], [], 0
    yield NewDeliveries(event.id, deliveries, skipped, after=after, upto="")


@dataclass(slots=True)
class _Progress:
    """One event's fan-out, as this call has committed it so far."""

    cursor: str = ""  # where the event's fan-out stands in Redis, as last known
    deliveries: list[NewDelivery] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    inline: list[DeliveryContext] = field(default_factory=list)
    committed: bool = False  # a chunk of ours went in
    finished: bool = False  # fanned out (by us or by another process), or gone
    stalled: bool = False  # its cursor moved under this round's plan


def _calls(
    events: Sequence[EventRef],
    subs: Sequence[Subscription],
    progress: Mapping[str, _Progress],
    now: int,
    inline_lease_ms: int | None,
) -> Iterator[list[NewDeliveries]]:
    """The Lua calls of one round: events with few subscriptions share calls, a big one's
    chunks go one per call; none holds more than ``CHUNK_ROWS`` rows."""
    ids = [s.id for s in subs]
    shared: list[NewDeliveries] = []
    rows = 0
    for event in events:
        cursor = progress[event.id].cursor
        remaining = subs[bisect_right(ids, cursor) :] if cursor else subs
        for chunk in chunks(event, remaining, now, cursor, inline_lease_ms=inline_lease_ms):
            size = len(chunk.deliveries) + len(chunk.skipped)
            if chunk.upto or chunk.after:
                yield [chunk]  # part of a big event's fan-out: a call of its own
                continue
            if shared and rows + size > CHUNK_ROWS:
                yield shared
                shared, rows = [], 0
            shared.append(chunk)
            rows += size
    if shared:
        yield shared


async def fan_out(
    store: Store,
    cache: SubscriptionCache,
    events: Sequence[EventRef],
    *,
    inline_lease_ms: int | None = None,
) -> list[Planned | None]:
    """Create the deliveries of these events, in as few calls as ``CHUNK_ROWS`` allows;
    None for an event fanned out already (or gone) before this call added anything to it.
    A fan-out begun before (a crash, a failed call) is carried on from its cursor."""
    with tracing.active().fanout(events) as trace:
        done = await _fan_out(store, cache, events, inline_lease_ms)
        trace.committed(done)
    return done


async def _fan_out(
    store: Store,
    cache: SubscriptionCache,
    events: Sequence[EventRef],
    inline_lease_ms: int | None,
) -> list[Planned | None]:
    progress = {e.id: _Progress() for e in events}
    pending = list(events)
    refresh = False
    for _ in range(_MAX_ROUNDS):
        rev, subs = await cache.current(refresh=refresh)
        refresh = False
        now = now_ms()
        try:
            for call in _calls(pending, subs, progress, now, inline_lease_ms):
                # Once one chunk of an event is refused, the rest of its plan is moot.
                call = [c for c in call if not progress[c.event_id].stalled]
                if call:
                    added = await store.deliveries.add(call, now, fan_out=True, subs_rev=rev)
                    _apply(progress, call, added.verdicts, added.inline)
        except StaleSubscriptions:
            refresh = True
        stalled = [e.id for e in pending if progress[e.id].stalled]
        if stalled:
            # Another process moved these events' cursors: carry on from where they are.
            for event_id, cursor in (await store.events.fanout_cursors(stalled)).items():
                progress[event_id].cursor, progress[event_id].stalled = cursor, False
        pending = [e for e in pending if not progress[e.id].finished]
        if not pending:
            break
    else:
        raise RuntimeError("subscriptions keep changing under fan-out")
    done: list[Planned | None] = []
    for event in events:
        p = progress[event.id]
        planned = Planned(event.id, p.deliveries, p.skipped, p.inline) if p.committed else None
        done.append(planned)
        if planned is None:
            continue
        unusable = cache.unusable_for(event.source)
        # One line per webhook at INFO (ingest.accepted; the deliveries log their own):
        # this one only when a subscription could not be used.
        level = log.info if unusable else log.debug
        level("fanout.completed", event_id=event.id, source=event.source,
              event_type=event.event_type, deliveries=len(p.deliveries),
              skipped=len(p.skipped),
              **({"unusable": unusable} if unusable else {}))  # fmt: skip
    return done


def _apply(
    progress: Mapping[str, _Progress],
    call: Sequence[NewDeliveries],
    verdicts: Sequence[int],
    inline: Sequence[DeliveryContext],
) -> None:
    for chunk, verdict in zip(call, verdicts, strict=True):
        p = progress[chunk.event_id]
        if verdict == 1:
            p.deliveries += chunk.deliveries
            p.skipped += chunk.skipped
            p.cursor, p.committed = chunk.upto, True
            p.finished = not chunk.upto
        elif verdict == 2:
            p.stalled = True
        else:
            p.finished = True  # fanned out by another process, or gone
    for ctx in inline:
        progress[ctx.event.id].inline.append(ctx)


async def stored_event(store: Store, event_id: str) -> EventRef | None:
    """An event as planning needs it, read back from Redis (recovery, replay)."""
    event = await store.events.get(event_id)
    found = await store.events.body(event_id)
    if event is None or found is None:
        return None
    return EventRef(
        event.id, event.source, event.event_type, event.headers, found[0], trace=event.trace
    )


async def replay(
    store: Store,
    event_id: str,
    subscription_ids: Sequence[str] | None,
    within: Callable[[Subscription], bool] | None = None,
) -> list[NewDelivery] | None:
    """New reliable deliveries of a stored event: to the subscriptions named, or to every
    current subscription that matches it. None when the event no longer exists."""
    event = await stored_event(store, event_id)
    if event is None:
        return None
    if subscription_ids is None:
        current = await store.subscriptions.for_source(event.source)
        subs = [s for s in current if isinstance(s, Subscription) and (within is None or within(s))]
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
    # In calls of CHUNK_ROWS at most, like a fan-out; the first says whether the event can
    # be replayed at all.
    for start in range(0, max(1, len(planned.deliveries)), CHUNK_ROWS):
        part = planned.deliveries[start : start + CHUNK_ROWS]
        skipped = planned.skipped if start == 0 else []
        added = await store.deliveries.add(
            [NewDeliveries(event_id, part, skipped)], now, fan_out=False
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
        except UNAVAILABLE as exc:
            # The outage itself is logged once (relay.delivery.connection): one line per
            # batch, no traceback per event.
            log.warning("fanout.deferred", events=len(batch), error=describe(exc))
            done.set_result({})
            return
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
