"""Putting deliveries back on the road: manual retries, event replays, dead letters."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from relay.api.deps import AdminDep, ServicesDep
from relay.api.listing import Moment, to_ms
from relay.api.problems import Problem, problem_docs
from relay.api.services import Services
from relay.delivery import queue
from relay.delivery.fanout import UnknownSubscription, replay
from relay.domain.clock import now_ms
from relay.domain.models import Delivery, DeliveryStatus
from relay.storage.keys import Keys
from relay.storage.store import NotFannedOut, Reopened

router = APIRouter(
    prefix="/api",
    dependencies=[AdminDep],
    tags=["replay"],
    responses=problem_docs(401, 404, 409, 422, 503),
)
log = structlog.get_logger("relay.replay")


class ReplayRequest(BaseModel):
    subscription_ids: list[str] | None = Field(
        default=None, description="Only these subscriptions; default: every one that matches now."
    )


class Replayed(BaseModel):
    event_id: str
    deliveries: list[Delivery]


class DeadLetterFilter(BaseModel):
    subscription_id: str | None = None
    since: Moment | None = None
    until: Moment | None = None
    limit: int = Field(default=1000, ge=1, le=10_000, description="Most to re-queue per call.")
    after: str | None = Field(
        default=None,
        description="Only dead letters after this delivery id: pass the previous call's `last`"
        " to work through a large backlog without meeting the same delivery twice.",
    )


class DeadLettersReplayed(BaseModel):
    requeued: int
    remaining: int
    last: str | None = Field(description="The last dead letter this call looked at.")


class DeadLettersPurged(BaseModel):
    purged: int


async def _reopen_and_queue(services: Services, delivery: Delivery, *, only_dead: bool) -> bool:
    """A fresh retry window and a manual attempt now; False if it was not dead (bulk)."""
    reopened = await services.store.reopen(
        delivery.id, delivery.subscription_id, now_ms(), only_dead=only_dead
    )
    if reopened is Reopened.IN_FLIGHT:
        raise Problem(409, f"delivery {delivery.id!r} has an attempt in flight; try again shortly")
    if isinstance(reopened, Reopened):
        return False
    attempts, generation = reopened
    await queue.enqueue_delivery(
        services.pool, delivery.id, attempts + 1, generation=generation, trigger="manual"
    )
    log.info(
        "delivery.retry_requested",
        delivery_id=delivery.id,
        event_id=delivery.event_id,
        subscription_id=delivery.subscription_id,
        attempt=attempts + 1,
    )
    return True


@router.post("/deliveries/{delivery_id}/retry", status_code=202)
async def retry_delivery(delivery_id: str, services: ServicesDep) -> Delivery:
    """A manual attempt now, whatever the status (dead included). Attempt numbers keep
    counting; if it fails, the retry schedule starts afresh from this attempt."""
    delivery = await services.store.get_delivery(delivery_id)
    if delivery is None:
        raise Problem(404, f"no delivery {delivery_id!r}")
    if not await _reopen_and_queue(services, delivery, only_dead=False):
        raise Problem(404, f"no delivery {delivery_id!r}")
    reopened = await services.store.get_delivery(delivery_id)
    assert reopened is not None
    return reopened


@router.post("/events/{event_id}/replay", status_code=202)
async def replay_event(
    event_id: str, services: ServicesDep, request: ReplayRequest | None = None
) -> Replayed:
    """Deliver a stored event again, as new deliveries with the same ``webhook-id``."""
    try:
        made = await replay(
            services.store, services.pool, event_id, request.subscription_ids if request else None
        )
    except UnknownSubscription:
        raise Problem(404, "one of subscription_ids does not exist") from None
    except NotFannedOut:
        raise Problem(409, "the event is not fanned out yet; try again in a moment") from None
    if made is None:
        raise Problem(404, f"no event {event_id!r}")
    deliveries = await services.store.get_deliveries([d.id for d in made])
    return Replayed(event_id=event_id, deliveries=deliveries)


async def _dead(services: Services, flt: DeadLetterFilter) -> list[Delivery]:
    """Dead deliveries matching the filter, oldest first, ``limit`` at most."""
    store = services.store
    index = Keys.dead_letters(flt.subscription_id)
    page = await store.page(
        index, "dlv", since_ms=to_ms(flt.since), until_ms=to_ms(flt.until), count=flt.limit,
        cursor=flt.after, oldest_first=True,
    )  # fmt: skip
    return [d for d in await store.get_deliveries(page.ids) if d.status is DeliveryStatus.DEAD]


@router.post("/dead-letters/replay")
async def replay_dead_letters(
    services: ServicesDep, flt: DeadLetterFilter | None = None
) -> DeadLettersReplayed:
    """Re-queue dead deliveries, oldest first, each with a fresh retry schedule.

    Safe to repeat: a delivery leaves the dead-letter index in the same step that re-queues
    it, so a second call finds only what died since.
    """
    flt = flt or DeadLetterFilter()
    requeued = 0
    dead = await _dead(services, flt)
    for delivery in dead:
        requeued += await _reopen_and_queue(services, delivery, only_dead=True)
    index = Keys.dead_letters(flt.subscription_id)
    remaining = await services.store.count(index, "dlv", to_ms(flt.since), to_ms(flt.until))
    log.info("dead_letters.replayed", requeued=requeued, remaining=remaining,
             subscription_id=flt.subscription_id)  # fmt: skip
    last = dead[-1].id if dead else None
    return DeadLettersReplayed(requeued=requeued, remaining=remaining, last=last)


@router.delete("/dead-letters")
async def purge_dead_letters(
    services: ServicesDep,
    subscription_id: str | None = None,
    since: Annotated[Moment | None, Query()] = None,
    until: Annotated[Moment | None, Query()] = None,
) -> JSONResponse:
    """Remove dead deliveries from the dead-letter index (their records expire as usual)."""
    flt = DeadLetterFilter(subscription_id=subscription_id, since=since, until=until, limit=10_000)
    purged = 0
    while batch := await _dead(services, flt):
        purged += await services.store.forget_dead(batch)
    log.info("dead_letters.purged", purged=purged, subscription_id=subscription_id)
    return JSONResponse(DeadLettersPurged(purged=purged).model_dump())
