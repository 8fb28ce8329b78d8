"""Fan-out: turn one stored event into one delivery per matching subscription.

Called by the API's background task right after the 202, and by the worker's recovery cron
for events whose background task never ran. Whoever commits first wins; the other finds the
event already fanned out and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from arq.connections import ArqRedis

from relay import queue
from relay.attempt import LEASE_MARGIN_S, Attempter
from relay.clock import now_ms
from relay.ids import new_id
from relay.matching import wants
from relay.models import DeliveryMode
from relay.store import NewDelivery, RelayStore

log = structlog.get_logger("relay.fanout")


@dataclass(frozen=True, slots=True)
class Planned:
    event_id: str
    deliveries: list[NewDelivery]


async def plan_and_commit(
    store: RelayStore, event_id: str, *, best_effort_inline: bool, best_effort_lease_s: float
) -> Planned | None:
    """Create the event's deliveries atomically; None if it was fanned out already.

    When best-effort attempts run inline (in the API), their due time is pushed past the
    attempt's lease so reconciliation only touches them if this process dies first.
    """
    event = await store.get_event(event_id)
    if event is None:
        return None
    subscriptions = await store.subscriptions_for_source(event.source)
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
    if not await store.commit_fanout(event_id, now, deliveries):
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
    store: RelayStore, pool: ArqRedis, event_id: str, attempter: Attempter | None = None
) -> Planned | None:
    """Fan out one event: queue its reliable deliveries, try best-effort ones once here.

    Without an ``attempter`` (the worker's recovery path) best-effort deliveries are queued
    too; the delivery job makes their single attempt.
    """
    lease_s = attempter.settings.best_effort_timeout_s + LEASE_MARGIN_S if attempter else 0.0
    planned = await plan_and_commit(
        store, event_id, best_effort_inline=attempter is not None, best_effort_lease_s=lease_s
    )
    if planned is None:
        return None
    for d in planned.deliveries:
        if d.mode is DeliveryMode.RELIABLE or attempter is None:
            await queue.enqueue_delivery(pool, d.id, 1)
    if attempter is not None:
        for d in planned.deliveries:
            if d.mode is DeliveryMode.BEST_EFFORT:
                await attempter.run(d.id, 1)
    return planned
