"""What the pages show, gathered through the same use cases and store surface as the API
(``relay.api.inspect`` for listings, ``relay.delivery`` for actions): no second path to
Redis, so the dashboard and the API can never disagree."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.api import inspect, scope
from relay.api.services import Services
from relay.domain.access import BOOTSTRAP, Access
from relay.domain.models import DeliveryStatus, Subscription, SubscriptionOut
from relay.observability import metrics
from relay.storage import HEARTBEAT_STALE_MS, LaneDepth, LaneView

# A subscription's recent success rate is over its last this-many deliveries.
RECENT = 50
_FINISHED = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.DEAD)


@dataclass(frozen=True, slots=True)
class SubscriptionHealth:
    sub: SubscriptionOut
    recent: int  # finished deliveries among the last RECENT
    succeeded: int
    waiting: int  # in its lane: due or scheduled
    in_flight: int
    last_error: str | None  # of its newest finished delivery, when that one did not succeed
    # A host that does not resolve (yet): nothing failed, but nothing can be delivered.
    warnings: tuple[str, ...] = ()
    held_until: int | None = None  # the lane hands out nothing until then (ms)
    hold_reason: str | None = None

    @property
    def state(self) -> str:
        if not self.sub.enabled:
            return "disabled"
        if self.sub.paused:
            return "paused"
        if self.last_error is not None:
            return "failing"
        return "warning" if self.warnings else "ok"


async def subscriptions_by_id(services: Services) -> dict[str, SubscriptionOut]:
    """Every subscription by id, so a delivery can show what it goes to, not only
    ``sub_…`` (its description and URL)."""
    subs = await services.store.subscriptions.all()
    return {s.id: s.public() for s in subs if isinstance(s, Subscription)}


async def delivery_statuses(
    services: Services, access: Access, event_ids: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """Each event's deliveries counted by status (``[("succeeded", 2), ("dead", 1)]``),
    the Events list's Deliveries column: of the subscriptions in the session's scope."""
    store = services.store
    per_event = await asyncio.gather(*(store.events.delivery_ids(e) for e in event_ids))
    deliveries = await store.deliveries.get_many([d for ids in per_event for d in ids])
    visible = await scope.subscription_ids(services, access)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for delivery in deliveries:
        if visible is None or delivery.subscription_id in visible:
            counts[delivery.event_id][delivery.status.value] += 1
    order = [s.value for s in DeliveryStatus]
    return {
        event_id: sorted(counts[event_id].items(), key=lambda item: order.index(item[0]))
        for event_id in event_ids
    }


@dataclass(frozen=True, slots=True)
class Worker:
    worker_id: str
    last_seen_ms: int
    live: bool


async def _health(
    services: Services, sub: SubscriptionOut, lane: LaneDepth | None, now_ms: int
) -> SubscriptionHealth:
    listing = await inspect.list_deliveries(
        services, BOOTSTRAP, subscription_id=sub.id, status=None, since=None, until=None,
        cursor=None, limit=RECENT,
    )  # fmt: skip
    finished = [d for d in listing.data if d.status in _FINISHED]
    newest = finished[0] if finished else None
    last_error = None
    if newest is not None and newest.status is not DeliveryStatus.SUCCEEDED:
        last_error = newest.last_error or (
            f"HTTP {newest.last_status_code}" if newest.last_status_code else newest.status.value
        )
    warnings = await services.subscriptions.warnings(sub.url)
    return SubscriptionHealth(
        sub=sub,
        warnings=tuple(warnings),
        recent=len(finished),
        succeeded=sum(d.status is DeliveryStatus.SUCCEEDED for d in finished),
        waiting=lane.waiting if lane else 0,
        in_flight=lane.in_flight if lane else 0,
        last_error=last_error,
        **_hold(await services.store.lanes.view(sub.id, now_ms) if lane else None),
    )


def _hold(view: LaneView | None) -> dict[str, Any]:
    if view is None or view.held_until is None:
        return {}
    return {"held_until": view.held_until, "hold_reason": view.hold_reason}


async def subscription_health(
    services: Services, access: Access, now_ms: int
) -> list[SubscriptionHealth]:
    # An unusable stored subscription has no health to show; the API lists it.
    subs = [
        s.public()
        for s in scope.in_scope(access, await services.store.subscriptions.all())
        if isinstance(s, Subscription)
    ]
    lanes = {d.subscription_id: d for d in await services.store.lanes.depths(now_ms)}
    found = await asyncio.gather(*(_health(services, s, lanes.get(s.id), now_ms) for s in subs))
    order = {"disabled": 0, "failing": 1, "warning": 2, "paused": 3, "ok": 4}
    return sorted(found, key=lambda h: (order[h.state], h.sub.created_at))


async def workers(services: Services, now_ms: int) -> list[Worker]:
    beats = await services.store.housekeeping.heartbeats()
    return [Worker(w, ms, now_ms - ms <= HEARTBEAT_STALE_MS) for w, ms in beats]


def ingest_outcomes(access: Access) -> dict[str, int]:
    """accepted / duplicate / rejected since this API process started (of the sources in
    scope)."""
    totals: dict[str, int] = defaultdict(int)
    for (source, outcome, _), count in metrics.ingest_counts().items():
        if access.sees_source(source):
            totals[outcome] += count
    return dict(totals)


def rejections(access: Access) -> dict[str, dict[str, int]]:
    """Rejected webhooks since this API process started, by source, then reason."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for (source, outcome, reason), count in metrics.ingest_counts().items():
        if outcome == "rejected" and access.sees_source(source):
            found[source][reason or "unknown"] = count
    return dict(found)
