"""Putting deliveries on the road: fan-out, replay, and re-queueing what is due.

Fan-out turns one stored event into one delivery per matching subscription. It is called by
the API's background task right after the 202, and by the worker's recovery cron for events
whose background task never ran. Whoever commits first wins; the other finds the event
already fanned out and does nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from arq.connections import ArqRedis

from relay.delivery import queue
from relay.delivery.attempt import LEASE_MARGIN_S, Attempter
from relay.domain.clock import now_ms
from relay.domain.ids import new_id
from relay.domain.matching import wants
from relay.domain.models import DeliveryMode
from relay.storage import Due, NewDelivery, Store

log = structlog.get_logger("relay.dispatch")


@dataclass(frozen=True, slots=True)
class EventRef:
    """What matching needs of an event: the ingest path knows it without asking Redis."""

    id: str
    source: str
    event_type: str | None


@dataclass(frozen=True, slots=True)
class Planned:
    event_id: str
    deliveries: list[NewDelivery]


async def plan_and_commit(
    store: Store,
    event: str | EventRef,
    *,
    best_effort_inline: bool,
    best_effort_lease_s: float,
) -> Planned | None:
    """Create the event's deliveries atomically; None if it was fanned out already.

    ``event`` is an id (the event is read from Redis) or what the caller already knows.
    When best-effort attempts run inline (in the API), their due time is pushed past the
    attempt's lease so reconciliation only touches them if this process dies first.
    """
    if isinstance(event, str):
        stored = await store.events.get(event)
        if stored is None:
            return None
        event = EventRef(stored.id, stored.source, stored.event_type)
    event_id = event.id
    subscriptions = await store.subscriptions.for_source(event.source)
    now = now_ms()
    inline_due = now + int(best_effort_lease_s * 1000)
    deliveries = [
        NewDelivery(
            id=new_id("dlv", now),
            subscription_id=sub.id,
            mode=sub.mode,
            due_ms=inline_due
            if best_effort_inline and sub.mode is DeliveryMode.BEST_EFFORT
            else now,
        )
        for sub in subscriptions
        if wants(sub, event.source, event.event_type)
    ]
    if not await store.deliveries.add(event_id, now, deliveries, fan_out=True):
        return None
    log.info(
        "fanout.completed",
        event_id=event_id,
        source=event.source,
        event_type=event.event_type,
        deliveries=len(deliveries),
    )
    return Planned(event_id, deliveries)


async def fan_out(
    store: Store, pool: ArqRedis, event: str | EventRef, attempter: Attempter | None = None
) -> Planned | None:
    """Fan out one event: queue its reliable deliveries, try best-effort ones once here.

    Without an ``attempter`` (the worker's recovery path) best-effort deliveries are queued
    too; the delivery job makes their single attempt.
    """
    lease_s = attempter.settings.best_effort_timeout_s + LEASE_MARGIN_S if attempter else 0.0
    planned = await plan_and_commit(
        store, event, best_effort_inline=attempter is not None, best_effort_lease_s=lease_s
    )
    if planned is None:
        return None
    await start(pool, planned.deliveries, attempter)
    return planned


async def start(
    pool: ArqRedis, deliveries: Sequence[NewDelivery], attempter: Attempter | None = None
) -> None:
    """Queue reliable deliveries' first attempts; make best-effort ones here if we can."""
    for d in deliveries:
        if d.mode is DeliveryMode.RELIABLE or attempter is None:
            await queue.enqueue_delivery(pool, d.id, 1)
    if attempter is not None:
        best_effort = [d for d in deliveries if d.mode is DeliveryMode.BEST_EFFORT]
        await asyncio.gather(
            *(attempter.run(d.id, 1, subscription_id=d.subscription_id) for d in best_effort)
        )


async def replay(
    store: Store, pool: ArqRedis, event_id: str, subscription_ids: Sequence[str] | None
) -> list[NewDelivery] | None:
    """New reliable deliveries of a stored event: to the subscriptions named, or to every
    current subscription that matches it. None when the event no longer exists."""
    event = await store.events.get(event_id)
    if event is None:
        return None
    if subscription_ids is None:
        subs = [
            s
            for s in await store.subscriptions.for_source(event.source)
            if wants(s, event.source, event.event_type)
        ]
    else:
        found = [
            await store.subscriptions.get(sub_id) for sub_id in dict.fromkeys(subscription_ids)
        ]
        subs = [s for s in found if s is not None]
        if len(subs) != len(found):
            raise UnknownSubscription
    now = now_ms()
    deliveries = [
        NewDelivery(
            id=new_id("dlv", now), subscription_id=s.id, mode=DeliveryMode.RELIABLE, due_ms=now
        )
        for s in subs
    ]
    if not await store.deliveries.add(event_id, now, deliveries, fan_out=False):
        return None
    await start(pool, deliveries)
    log.info("event.replayed", event_id=event_id, deliveries=len(deliveries))
    return deliveries


class UnknownSubscription(LookupError):
    """No subscription has this id."""


async def requeue_due(store: Store, pool: ArqRedis, cutoff_ms: int, limit: int) -> int:
    """Queue the next attempt of every delivery due by ``cutoff_ms``, oldest first."""
    return await requeue(pool, await store.deliveries.due_before(cutoff_ms, limit))


async def requeue(pool: ArqRedis, dues: Sequence[Due]) -> int:
    """Queue the next attempt of each delivery, in the order given.

    ARQ refuses a job id that is still live, so a delivery that has its job is left alone.
    """
    queued = 0
    for due in dues:
        if await queue.enqueue_delivery(
            pool, due.delivery_id, due.attempts + 1, generation=due.generation
        ):
            queued += 1
            log.info(
                "delivery.requeued",
                delivery_id=due.delivery_id,
                subscription_id=due.subscription_id,
                event_id=due.event_id,
                attempt=due.attempts + 1,
            )
    return queued
