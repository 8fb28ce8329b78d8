"""Inspection: what happened to an event and to each of its deliveries."""

from __future__ import annotations

from fastapi import APIRouter

from relay.api.deps import AdminDep, ServicesDep
from relay.models import DeliveryDetail, EventDetail
from relay.problems import Problem

router = APIRouter(prefix="/api", dependencies=[AdminDep], tags=["inspect"])


@router.get("/events/{event_id}")
async def get_event(event_id: str, services: ServicesDep) -> EventDetail:
    """An event's metadata and its deliveries (the raw body is not included)."""
    store = services.store
    event = await store.get_event(event_id)
    if event is None:
        raise Problem(404, f"no event {event_id!r}")
    deliveries = await store.get_deliveries(await store.event_delivery_ids(event_id))
    return EventDetail(**event.model_dump(), deliveries=deliveries)


@router.get("/deliveries/{delivery_id}")
async def get_delivery(delivery_id: str, services: ServicesDep) -> DeliveryDetail:
    """A delivery's status and every attempt made so far."""
    store = services.store
    delivery = await store.get_delivery(delivery_id)
    if delivery is None:
        raise Problem(404, f"no delivery {delivery_id!r}")
    return DeliveryDetail(
        **delivery.model_dump(), attempt_log=await store.get_attempts(delivery_id)
    )
