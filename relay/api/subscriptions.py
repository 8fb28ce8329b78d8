"""Admin API: subscriptions. The rules live in :mod:`relay.delivery.subscriptions`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Response
from pydantic import BaseModel, ValidationError

from relay.api import scope
from relay.api.auth import AccessDep, AuditedRoute, needs
from relay.api.deps import ServicesDep
from relay.api.problems import Problem, invalid, problem_docs
from relay.api.views import (
    LaneStateView,
    SecretRotatedView,
    ShownSubscription,
    ShownSubscriptionDetail,
    SubscriptionCreatedView,
    SubscriptionDetailView,
    SubscriptionList,
    SubscriptionSavedView,
    SubscriptionView,
    UnusableSubscriptionView,
)
from relay.delivery.fanout import UnknownSubscription
from relay.delivery.subscriptions import InvalidSubscription, Saved
from relay.domain.access import Role
from relay.domain.clock import now_ms
from relay.domain.input_rules import STORED
from relay.domain.models import (
    DeliveryStatus,
    SecretRotated,
    Subscription,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionPatch,
    UnusableSubscription,
)
from relay.storage import UnusableRecord

router = APIRouter(
    prefix="/api",
    tags=["admin"],
    route_class=AuditedRoute,
    responses=problem_docs(401, 403, 404, 409, 422, 429, 503),
)


@asynccontextmanager
async def answers() -> AsyncIterator[None]:
    """The lifecycle's refusals as problem answers."""
    try:
        yield
    except UnknownSubscription as exc:
        raise Problem(404, f"no subscription {exc.args[0]!r}") from None
    except UnusableRecord as exc:
        raise unusable(exc.record) from None
    except InvalidSubscription as exc:
        raise Problem(422, str(exc)) from None
    except ValidationError as exc:  # e.g. {"url": null}: valid JSON, not a valid subscription
        raise invalid(exc) from None


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionCreatedView,
    **needs(Role.ADMIN),
)
async def create_subscription(
    spec: SubscriptionIn, services: ServicesDep, access: AccessDep
) -> SubscriptionCreated:
    """Create a subscription. Its signing secret is in this response and never again.
    Sources must exist, and a host must not resolve only to addresses the relay may not
    call (422); a host that does not resolve yet is accepted with a ``warnings`` entry.
    A scoped token may name only its own sources, never ``"*"`` (403)."""
    scope.require_sources(access, spec.sources)
    async with answers():
        saved = await services.subscriptions.create(spec)
    return created(saved)


def created(saved: Saved) -> SubscriptionCreated:
    """A new subscription's answer: its secret, shown this once, and any warnings."""
    sub = saved.subscription
    return SubscriptionCreated.model_validate(
        {**sub.public().model_dump(), "secret": sub.secret, "warnings": saved.warnings},
        context=STORED,
    )


def unusable(record: UnusableSubscription) -> Problem:
    return Problem(
        409,
        f"subscription {record.id!r} is stored in a form this relay cannot use "
        f"({record.problem}); delete it and create it again",
    )


def _shown(sub: Subscription | UnusableSubscription) -> ShownSubscription:
    """The view of a stored subscription, built under the rules it was stored with: FastAPI
    takes a view as it is, but would validate anything else under today's input rules."""
    if isinstance(sub, Subscription):
        return SubscriptionView.model_validate(sub.public(), from_attributes=True, context=STORED)
    return UnusableSubscriptionView.model_validate(sub, from_attributes=True)


@router.get("/subscriptions", response_model=SubscriptionList, **needs(Role.VIEWER))
async def list_subscriptions(services: ServicesDep, access: AccessDep) -> SubscriptionList:
    """Every subscription (in the token's scope), including any stored in a form this relay
    cannot use (those carry a ``problem``)."""
    found = scope.in_scope(access, await services.store.subscriptions.all())
    return SubscriptionList(data=[_shown(s) for s in found])


@router.get("/subscriptions/{sub_id}", response_model=ShownSubscriptionDetail, **needs(Role.VIEWER))
async def get_subscription(sub_id: str, services: ServicesDep) -> ShownSubscriptionDetail:
    """One subscription, with its ``lane``: what waits, and whether and why it is held; one
    this relay cannot use answers with its ``problem``."""
    async with answers():
        sub = await services.subscriptions.lookup(sub_id)
    shown = _shown(sub)
    if not isinstance(shown, SubscriptionView):
        return shown
    lane = await services.store.lanes.view(sub_id, now_ms())
    # Both parts are validated views already: joined without validating them again.
    return SubscriptionDetailView.model_construct(
        **dict(shown), lane=LaneStateView.model_validate(lane, from_attributes=True)
    )


@router.patch("/subscriptions/{sub_id}", response_model=SubscriptionSavedView, **needs(Role.ADMIN))
async def patch_subscription(
    sub_id: str, patch: SubscriptionPatch, services: ServicesDep, access: AccessDep
) -> SubscriptionSavedView:
    """Change some fields (checked as on create). Re-enabling clears the reason it was
    disabled."""
    if patch.sources is not None:
        scope.require_sources(access, patch.sources)
    async with answers():
        saved = await services.subscriptions.update(sub_id, patch)
    return SubscriptionSavedView.model_validate(
        {**saved.subscription.public().model_dump(), "warnings": saved.warnings}, context=STORED
    )


@router.post(
    "/subscriptions/{sub_id}/rotate-secret", response_model=SecretRotatedView, **needs(Role.ADMIN)
)
async def rotate_secret(sub_id: str, services: ServicesDep) -> SecretRotated:
    """Issue a new signing secret (shown only here). For ``RELAY_SECRET_ROTATION_OVERLAP_S``
    deliveries are signed with both the new and the previous secret."""
    async with answers():
        return await services.subscriptions.rotate_secret(sub_id)


@router.post(
    "/subscriptions/{sub_id}/pause", response_model=ShownSubscription, **needs(Role.OPERATOR)
)
async def pause_subscription(sub_id: str, services: ServicesDep) -> ShownSubscription:
    """Stop delivering: due deliveries wait (none is dropped within the retention period)
    until resume."""
    async with answers():
        return _shown(await services.subscriptions.set_paused(sub_id, True))


@router.post(
    "/subscriptions/{sub_id}/resume", response_model=ShownSubscription, **needs(Role.OPERATOR)
)
async def resume_subscription(sub_id: str, services: ServicesDep) -> ShownSubscription:
    """Deliver again: waiting deliveries go out in the order they fell due."""
    async with answers():
        return _shown(await services.subscriptions.set_paused(sub_id, False))


class TestResult(BaseModel):
    event_id: str
    delivery_id: str
    status: DeliveryStatus
    status_code: int | None
    error: str | None


@router.post("/subscriptions/{sub_id}/test", **needs(Role.OPERATOR))
async def test_subscription(sub_id: str, services: ServicesDep) -> TestResult:
    """Send a synthetic, signed ``relay.test`` event to this subscription now (one attempt)
    and answer with what the receiver said."""
    async with answers():
        sent = await services.subscriptions.send_test(sub_id)
    return TestResult(
        event_id=sent.event_id,
        delivery_id=sent.delivery.id,
        status=sent.delivery.status,
        status_code=sent.delivery.last_status_code,
        error=sent.delivery.last_error,
    )


@router.delete("/subscriptions/{sub_id}", status_code=204, **needs(Role.ADMIN))
async def delete_subscription(sub_id: str, services: ServicesDep) -> Response:
    async with answers():
        await services.subscriptions.delete(sub_id)
    return Response(status_code=204)
