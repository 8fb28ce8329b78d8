"""Inspection: events, deliveries and dead letters, with filters and cursor pagination."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Response

from relay.api import scope
from relay.api.auth import AccessDep, AuditedRoute, needs
from relay.api.deps import KnownSubscriptionFilter, ServicesDep
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
from relay.domain.access import Role
from relay.domain.explain import explain
from relay.domain.models import (
    Delivery,
    DeliveryDetail,
    DeliveryStatus,
    Event,
    EventDetail,
    Skipped,
)
from relay.domain.ops import INTERNAL_SOURCES
from relay.storage import Page, TimeRange

router = APIRouter(
    prefix="/api",
    tags=["inspect"],
    route_class=AuditedRoute,
    responses=problem_docs(401, 403, 404, 422, 429, 503),
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


@router.get("/events", response_model=Listing[EventView], **needs(Role.VIEWER))
async def list_events(
    services: ServicesDep,
    access: AccessDep,
    source: str | None = None,
    event_type: str | None = None,
    status: Annotated[
        DeliveryStatus | None, Query(description="Events with a delivery in this status.")
    ] = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    include_internal: Annotated[
        bool,
        Query(
            description="Also the relay's own events (`_relay`: subscription tests, "
            "`_relay.ops`: operational events). Left out by default unless `source` names one."
        ),
    ] = False,
) -> Listing[Event]:
    """Events, newest first: of the token's sources only, and the relay's own events only
    when asked for."""
    store = services.store
    if source is not None and not access.sees_source(source):
        return Listing(data=[], next_cursor=None)
    with_status: set[str] = set()
    # A scoped token filters by the status of the deliveries it can see, no others.
    visible = None if status is None else await scope.subscription_ids(services, access)

    async def load(ids: Sequence[str]) -> list[Event]:
        events = await store.events.get_many(ids)
        if status is not None:
            delivery_ids = [d for e in events for d in await store.events.delivery_ids(e.id)]
            deliveries = await store.deliveries.get_many(delivery_ids)
            with_status.update(
                d.event_id
                for d in deliveries
                if d.status is status and (visible is None or d.subscription_id in visible)
            )
        return events

    hide_internal = source is None and not include_internal

    def keep(event: Event) -> bool:
        return (
            (event_type is None or event.event_type == event_type)
            and (status is None or event.id in with_status)
            and not (hide_internal and event.source in INTERNAL_SOURCES)
        )

    async def fetch(window: TimeRange, count: int) -> Page:
        return await store.events.page(
            window, count, source=source, within=scope.source_names(access)
        )

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


@router.get("/events/{event_id}", response_model=EventDetailView, **needs(Role.VIEWER))
async def get_event(event_id: str, services: ServicesDep, access: AccessDep) -> EventDetail:
    """An event's metadata and its deliveries (the raw body is at ``/body``). A scoped
    token sees only the deliveries to subscriptions in its scope."""
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
    visible = await scope.subscription_ids(services, access)
    if visible is not None:
        deliveries = [d for d in deliveries if d.subscription_id in visible]
        skipped = [s for s in skipped if s.subscription_id in visible]
        not_delivered = [n for n in not_delivered if n.subscription_id in visible]
    return EventDetail(**event.model_dump(), deliveries=deliveries, skipped=skipped,
                       not_delivered=not_delivered)  # fmt: skip


@router.get(
    "/events/{event_id}/body",
    response_class=Response,
    responses={200: {"description": "The raw body, byte for byte, with its content-type."}},
    **needs(Role.VIEWER),
)
async def get_event_body(event_id: str, services: ServicesDep) -> Response:
    found = await services.store.events.body(event_id)
    if found is None:
        raise Problem(404, f"no event {event_id!r}")
    body, content_type = found
    return Response(body, media_type=content_type or "application/octet-stream")


@router.get(
    "/deliveries",
    response_model=Listing[DeliveryView],
    **needs(Role.VIEWER, KnownSubscriptionFilter),
)
async def list_deliveries(
    services: ServicesDep,
    access: AccessDep,
    subscription_id: str | None = None,
    status: DeliveryStatus | None = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Listing[Delivery]:
    """Deliveries, newest first (to the token's subscriptions only)."""
    deliveries = services.store.deliveries
    within = await scope.subscription_ids(services, access)

    async def fetch(window: TimeRange, count: int) -> Page:
        dead = status is DeliveryStatus.DEAD
        return await deliveries.page(
            window, count, subscription_id=subscription_id, within=within, dead=dead
        )

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


@router.get("/deliveries/{delivery_id}", response_model=DeliveryDetailView, **needs(Role.VIEWER))
async def get_delivery(delivery_id: str, services: ServicesDep) -> DeliveryDetail:
    """A delivery's status and every attempt made so far."""
    store = services.store
    delivery = await store.deliveries.get(delivery_id)
    if delivery is None:
        raise Problem(404, f"no delivery {delivery_id!r}")
    return DeliveryDetail(
        **delivery.model_dump(), attempt_log=await store.deliveries.attempts(delivery_id)
    )


@router.get(
    "/dead-letters",
    response_model=DeadLettersView,
    **needs(Role.VIEWER, KnownSubscriptionFilter),
)
async def list_dead_letters(
    services: ServicesDep,
    access: AccessDep,
    subscription_id: str | None = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> DeadLetters:
    """Deliveries that gave up, newest first; ``total`` counts all that match (within the
    token's scope)."""
    listing = await list_deliveries(
        services, access, subscription_id, DeliveryStatus.DEAD, since, until, cursor, limit
    )
    total = await services.replays.count_dead(
        DeadLetterQuery(
            subscription_id, since_ms=to_ms(since), until_ms=to_ms(until),
            within=await scope.subscription_ids(services, access),
        )
    )  # fmt: skip
    return DeadLetters(data=listing.data, next_cursor=listing.next_cursor, total=total)
