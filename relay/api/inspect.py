"""Inspection: events, deliveries and dead letters, with filters and cursor pagination."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Response

from relay.api.deps import AdminDep, KnownSubscriptionFilter, ServicesDep
from relay.api.listing import Listing, Moment, collect, to_ms
from relay.api.problems import Problem, problem_docs
from relay.api.views import (
    DeadLettersView,
    DeliveryDetailView,
    DeliveryView,
    EventDetailView,
    EventView,
)
from relay.delivery.replay import DeadLetters as DeadLetterQuery
from relay.domain.explain import explain
from relay.domain.models import (
    Delivery,
    DeliveryDetail,
    DeliveryStatus,
    Event,
    EventDetail,
    Skipped,
)
from relay.storage import Page, TimeRange

router = APIRouter(
    prefix="/api",
    dependencies=[AdminDep],
    tags=["inspect"],
    responses=problem_docs(401, 404, 422, 503),
)

Limit = Annotated[int, Query(ge=1, le=500, description="Most items in one answer.")]
Since = Annotated[
    Moment | None, Query(description="RFC 3339 / ISO 8601 (UTC if no zone); created since.")
]
Until = Annotated[
    Moment | None, Query(description="RFC 3339 / ISO 8601 (UTC if no zone); created until.")
]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


class DeadLetters(Listing[Delivery]):
    total: int


@router.get("/events", response_model=Listing[EventView])
async def list_events(
    services: ServicesDep,
    source: str | None = None,
    event_type: str | None = None,
    status: Annotated[
        DeliveryStatus | None, Query(description="Events with a delivery in this status.")
    ] = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Listing[Event]:
    """Events, newest first."""
    store = services.store
    with_status: set[str] = set()

    async def load(ids: Sequence[str]) -> list[Event]:
        events = await store.events.get_many(ids)
        if status is not None:
            delivery_ids = [d for e in events for d in await store.events.delivery_ids(e.id)]
            deliveries = await store.deliveries.get_many(delivery_ids)
            with_status.update(d.event_id for d in deliveries if d.status is status)
        return events

    def keep(event: Event) -> bool:
        return (event_type is None or event.event_type == event_type) and (
            status is None or event.id in with_status
        )

    async def fetch(window: TimeRange, count: int) -> Page:
        return await store.events.page(window, count, source=source)

    return await collect(
        fetch,
        load=load,
        key=lambda e: e.id,
        keep=keep,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )


@router.get("/events/{event_id}", response_model=EventDetailView)
async def get_event(event_id: str, services: ServicesDep) -> EventDetail:
    """An event's metadata and its deliveries (the raw body is at ``/body``)."""
    store = services.store
    event = await store.events.get(event_id)
    if event is None:
        raise Problem(404, f"no event {event_id!r}")
    deliveries = await store.deliveries.get_many(await store.events.delivery_ids(event_id))
    filtered = await store.events.skipped(event_id)
    skipped = [Skipped(subscription_id=sub_id, failed=why) for sub_id, why in filtered.items()]
    current = await store.subscriptions.for_source(event.source)
    deleted = await store.subscriptions.missing({d.subscription_id for d in deliveries})
    not_delivered = explain(event, deliveries, filtered, current, deleted)
    return EventDetail(**event.model_dump(), deliveries=deliveries, skipped=skipped,
                       not_delivered=not_delivered)  # fmt: skip


@router.get(
    "/events/{event_id}/body",
    response_class=Response,
    responses={200: {"description": "The raw body, byte for byte, with its content-type."}},
)
async def get_event_body(event_id: str, services: ServicesDep) -> Response:
    found = await services.store.events.body(event_id)
    if found is None:
        raise Problem(404, f"no event {event_id!r}")
    body, content_type = found
    return Response(body, media_type=content_type or "application/octet-stream")


@router.get(
    "/deliveries", dependencies=[KnownSubscriptionFilter], response_model=Listing[DeliveryView]
)
async def list_deliveries(
    services: ServicesDep,
    subscription_id: str | None = None,
    status: DeliveryStatus | None = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Listing[Delivery]:
    """Deliveries, newest first."""
    deliveries = services.store.deliveries

    async def fetch(window: TimeRange, count: int) -> Page:
        dead = status is DeliveryStatus.DEAD
        return await deliveries.page(window, count, subscription_id=subscription_id, dead=dead)

    return await collect(
        fetch,
        load=deliveries.get_many,
        key=lambda d: d.id,
        keep=None if status is None else (lambda d: d.status is status),
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )


@router.get("/deliveries/{delivery_id}", response_model=DeliveryDetailView)
async def get_delivery(delivery_id: str, services: ServicesDep) -> DeliveryDetail:
    """A delivery's status and every attempt made so far."""
    store = services.store
    delivery = await store.deliveries.get(delivery_id)
    if delivery is None:
        raise Problem(404, f"no delivery {delivery_id!r}")
    return DeliveryDetail(
        **delivery.model_dump(), attempt_log=await store.deliveries.attempts(delivery_id)
    )


@router.get("/dead-letters", dependencies=[KnownSubscriptionFilter], response_model=DeadLettersView)
async def list_dead_letters(
    services: ServicesDep,
    subscription_id: str | None = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> DeadLetters:
    """Deliveries that gave up, newest first; ``total`` counts all that match."""
    listing = await list_deliveries(
        services, subscription_id, DeliveryStatus.DEAD, since, until, cursor, limit
    )
    total = await services.replays.count_dead(
        DeadLetterQuery(subscription_id, since_ms=to_ms(since), until_ms=to_ms(until))
    )
    return DeadLetters(data=listing.data, next_cursor=listing.next_cursor, total=total)
