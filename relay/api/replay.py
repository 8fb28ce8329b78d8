"""Putting deliveries back on the road: manual retries, event replays, dead letters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from relay.api import scope
from relay.api.auth import AccessDep, AuditedRoute, needs
from relay.api.deps import KnownSubscriptionFilter, ServicesDep, known_subscription
from relay.api.listing import Moment, to_ms
from relay.api.problems import Problem, problem_docs
from relay.api.subscriptions import unusable
from relay.api.views import DeliveryView
from relay.delivery.fanout import UnknownSubscription
from relay.delivery.replay import DeadLetters, InFlight, UnknownDelivery
from relay.domain.access import Access, Role
from relay.domain.models import Delivery
from relay.storage import NotFannedOut, UnusableRecord

router = APIRouter(
    prefix="/api",
    tags=["replay"],
    route_class=AuditedRoute,
    responses=problem_docs(401, 403, 404, 409, 422, 429, 503),
)


class ReplayRequest(BaseModel):
    subscription_ids: list[str] | None = Field(
        default=None, description="Only these subscriptions; default: every one that matches now."
    )


class Replayed(BaseModel):
    event_id: str
    deliveries: list[DeliveryView]


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


async def _dead_letters(
    services: ServicesDep, access: Access, flt: DeadLetterFilter
) -> DeadLetters:
    return DeadLetters(
        subscription_id=flt.subscription_id, since_ms=to_ms(flt.since),
        until_ms=to_ms(flt.until), limit=flt.limit, after=flt.after,
        within=await scope.subscription_ids(services, access),
    )  # fmt: skip


@contextmanager
def _in_flight_is_conflict() -> Iterator[None]:
    try:
        yield
    except InFlight as exc:
        raise Problem(
            409, f"delivery {exc.args[0]!r} has an attempt in flight; try again shortly"
        ) from None


@router.post(
    "/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=DeliveryView,
    **needs(Role.OPERATOR),
)
async def retry_delivery(delivery_id: str, services: ServicesDep) -> Delivery:
    """A manual attempt now, whatever the status (dead included). Attempt numbers keep
    counting; if it fails, the retry schedule starts afresh from this attempt."""
    try:
        with _in_flight_is_conflict():
            return await services.replays.retry(delivery_id)
    except UnknownDelivery:
        raise Problem(404, f"no delivery {delivery_id!r}") from None


@router.post("/events/{event_id}/replay", status_code=202, **needs(Role.OPERATOR))
async def replay_event(
    event_id: str, services: ServicesDep, access: AccessDep, request: ReplayRequest | None = None
) -> Replayed:
    """Deliver a stored event again, as new deliveries with the same ``webhook-id`` (a
    scoped token: only to subscriptions in its scope)."""
    named = request.subscription_ids if request else None
    for sub_id in named or ():
        if not await scope.sees_subscription(services, access, sub_id):
            raise Problem(404, f"no subscription {sub_id!r}")
    try:
        made = await services.replays.replay_event(
            event_id, named, lambda sub: access.sees_subscription(sub.sources)
        )
    except UnknownSubscription as exc:
        raise Problem(404, f"no subscription {exc.args[0]!r}") from None
    except UnusableRecord as exc:
        raise unusable(exc.record) from None
    except NotFannedOut:
        raise Problem(409, "the event is not fanned out yet; try again in a moment") from None
    if made is None:
        raise Problem(404, f"no event {event_id!r}")
    return Replayed.model_validate({"event_id": event_id, "deliveries": made})


@router.post("/dead-letters/replay", **needs(Role.OPERATOR))
async def replay_dead_letters(
    services: ServicesDep, access: AccessDep, flt: DeadLetterFilter | None = None
) -> DeadLettersReplayed:
    """Re-queue dead deliveries, oldest first, each with a fresh retry schedule.

    Safe to repeat: a delivery leaves the dead-letter index in the same step that re-queues
    it, so a second call finds only what died since.
    """
    await known_subscription(services, access, flt.subscription_id if flt else None)
    which = await _dead_letters(services, access, flt or DeadLetterFilter())
    with _in_flight_is_conflict():
        requeued, remaining, last = await services.replays.replay_dead(which)
    return DeadLettersReplayed(requeued=requeued, remaining=remaining, last=last)


@router.delete("/dead-letters", **needs(Role.OPERATOR, KnownSubscriptionFilter))
async def purge_dead_letters(
    services: ServicesDep,
    access: AccessDep,
    subscription_id: str | None = None,
    since: Annotated[Moment | None, Query()] = None,
    until: Annotated[Moment | None, Query()] = None,
) -> JSONResponse:
    """Remove dead deliveries from the dead-letter index (their records expire as usual)."""
    flt = DeadLetterFilter(subscription_id=subscription_id, since=since, until=until, limit=10_000)
    purged = await services.replays.purge_dead(await _dead_letters(services, access, flt))
    return JSONResponse(DeadLettersPurged(purged=purged).model_dump())
