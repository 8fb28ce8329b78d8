"""Admin API: sources and subscriptions (bearer token: ``RELAY_ADMIN_TOKEN``)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from relay.api.deps import AdminDep, ServicesDep
from relay.api.problems import Problem, invalid, problem_docs
from relay.api.services import Services
from relay.delivery.fanout import requeue
from relay.domain.addresses import ip_literal
from relay.domain.clock import now_ms
from relay.domain.ids import new_id
from relay.domain.models import (
    SOURCE_NAME_PATTERN,
    TEST_EVENT_TYPE,
    TEST_SOURCE,
    DeliveryMode,
    DeliveryStatus,
    SecretRotated,
    SourceIn,
    Subscription,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPatch,
    Trigger,
)
from relay.domain.signing import generate_secret
from relay.storage.store import NewDelivery

router = APIRouter(
    prefix="/api",
    dependencies=[AdminDep],
    tags=["admin"],
    responses=problem_docs(401, 404, 422, 503),
)
log = structlog.get_logger("relay.admin")


# --- sources -------------------------------------------------------------------------------


@router.put("/sources/{name}", responses={201: {"description": "Created."}})
async def put_source(
    spec: SourceIn,
    services: ServicesDep,
    name: Annotated[str, Path(pattern=SOURCE_NAME_PATTERN, description="The source's name.")],
) -> JSONResponse:
    """Create or replace a source; webhooks for it are posted to ``/ingest/{name}``."""
    source, created = await services.store.put_source(name, spec, now_ms())
    services.ingestor.forget(name)
    if source.verification.scheme == "none":
        log.warning("source.unverified", source=name, reason="verification scheme 'none'")
    log.info("source.saved", source=name, created=created, scheme=source.verification.scheme)
    return JSONResponse(source.public(), status_code=201 if created else 200)


@router.get("/sources")
async def list_sources(services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    return {"data": [s.public() for s in await services.store.list_sources()]}


@router.get("/sources/{name}")
async def get_source(name: str, services: ServicesDep) -> dict[str, Any]:
    found = await services.store.get_source(name)
    if found is None:
        raise Problem(404, f"no source named {name!r}")
    return found[0].public()


@router.delete("/sources/{name}", status_code=204)
async def delete_source(name: str, services: ServicesDep) -> Response:
    if not await services.store.delete_source(name):
        raise Problem(404, f"no source named {name!r}")
    services.ingestor.forget(name)
    log.info("source.deleted", source=name)
    return Response(status_code=204)


# --- subscriptions -------------------------------------------------------------------------


def _reachable(services: Services, url: object) -> None:
    """Refuse, up front, a URL whose host is an address the relay may not call (hostnames
    are checked on every connection, when they resolve)."""
    host = getattr(url, "host", None) or ""
    address = ip_literal(host)
    if address is not None and not services.settings.address_guard.allows(address):
        raise Problem(
            422,
            f"{host} is not a public address; allow its network with "
            "RELAY_ALLOWED_PRIVATE_NETWORKS to deliver there",
        )


async def _subscription(services: Services, sub_id: str) -> Subscription:
    sub = await services.store.get_subscription(sub_id)
    if sub is None:
        raise Problem(404, f"no subscription {sub_id!r}")
    return sub


@router.post("/subscriptions", status_code=201, response_model=SubscriptionCreated)
async def create_subscription(spec: SubscriptionIn, services: ServicesDep) -> SubscriptionCreated:
    """Create a subscription. Its signing secret is in this response and never again."""
    _reachable(services, spec.url)
    now = now_ms()
    sub = Subscription(
        id=new_id("sub", now), secret=generate_secret(), created_at=now, updated_at=now,
        **dict(spec),
    )  # fmt: skip
    await services.store.create_subscription(sub)
    log.info("subscription.created", subscription_id=sub.id, sources=sub.sources)
    return SubscriptionCreated(**sub.public().model_dump(), secret=sub.secret)


@router.get("/subscriptions")
async def list_subscriptions(services: ServicesDep) -> dict[str, list[SubscriptionOut]]:
    return {"data": [s.public() for s in await services.store.list_subscriptions()]}


@router.get("/subscriptions/{sub_id}")
async def get_subscription(sub_id: str, services: ServicesDep) -> SubscriptionOut:
    return (await _subscription(services, sub_id)).public()


@router.patch("/subscriptions/{sub_id}")
async def patch_subscription(
    sub_id: str, patch: SubscriptionPatch, services: ServicesDep
) -> SubscriptionOut:
    """Change some fields. Re-enabling clears the reason it was disabled."""
    if patch.url is not None:
        _reachable(services, patch.url)
    changes = patch.model_dump(exclude_unset=True)
    if changes.get("enabled") is True:
        changes["disabled_reason"] = None

    def apply(current: Subscription) -> Subscription:
        updated = {**current.model_dump(), **changes}
        updated["updated_at"] = max(now_ms(), current.updated_at + 1)
        return Subscription.model_validate(updated)

    try:
        updated = await services.store.update_subscription(sub_id, apply)
    except ValidationError as exc:  # e.g. {"url": null}: valid JSON, not a valid subscription
        raise invalid(exc) from None
    if updated is None:
        raise Problem(404, f"no subscription {sub_id!r}")
    log.info("subscription.updated", subscription_id=sub_id, fields=sorted(changes))
    return updated.public()


@router.post("/subscriptions/{sub_id}/rotate-secret")
async def rotate_secret(sub_id: str, services: ServicesDep) -> SecretRotated:
    """Issue a new signing secret (shown only here). For ``RELAY_SECRET_ROTATION_OVERLAP_S``
    deliveries are signed with both the new and the previous secret."""
    secret = generate_secret()
    now = now_ms()
    expires = now + services.settings.secret_rotation_overlap_s * 1000

    def rotate(current: Subscription) -> Subscription:
        return current.model_copy(
            update={
                "secret": secret,
                "previous_secret": current.secret,
                "previous_secret_expires_at": expires,
                "updated_at": max(now, current.updated_at + 1),
            }
        )

    if await services.store.update_subscription(sub_id, rotate) is None:
        raise Problem(404, f"no subscription {sub_id!r}")
    log.info("subscription.secret_rotated", subscription_id=sub_id, overlap_until=expires)
    return SecretRotated(id=sub_id, secret=secret, previous_secret_expires_at=expires)


async def _set_paused(services: Services, sub_id: str, paused: bool) -> SubscriptionOut:
    moved = await services.store.set_paused(sub_id, paused)
    if moved is None:
        raise Problem(404, f"no subscription {sub_id!r}")
    if moved:
        # Parked deliveries are due again: queue them now, in the order they fell due.
        rows = await services.store.due_rows(moved)
        await requeue(services.pool, rows)
        if len(rows) < len(moved):
            log.warning("subscription.parked_deliveries_expired", subscription_id=sub_id,
                        expired=len(moved) - len(rows))  # fmt: skip
    log.info("subscription.paused" if paused else "subscription.resumed",
             subscription_id=sub_id, resumed_deliveries=len(moved))  # fmt: skip
    return (await _subscription(services, sub_id)).public()


@router.post("/subscriptions/{sub_id}/pause")
async def pause_subscription(sub_id: str, services: ServicesDep) -> SubscriptionOut:
    """Stop delivering: due deliveries wait (none is dropped within the retention period)
    until resume."""
    return await _set_paused(services, sub_id, True)


@router.post("/subscriptions/{sub_id}/resume")
async def resume_subscription(sub_id: str, services: ServicesDep) -> SubscriptionOut:
    """Deliver again: waiting deliveries go out in the order they fell due."""
    return await _set_paused(services, sub_id, False)


class TestResult(BaseModel):
    event_id: str
    delivery_id: str
    status: DeliveryStatus
    status_code: int | None
    error: str | None


@router.post("/subscriptions/{sub_id}/test")
async def test_subscription(sub_id: str, services: ServicesDep) -> TestResult:
    """Send a synthetic, signed ``relay.test`` event to this subscription now (one attempt)
    and answer with what the receiver said."""
    sub = await _subscription(services, sub_id)
    now = now_ms()
    event_id = new_id("evt", now)
    body = orjson.dumps(
        {"type": TEST_EVENT_TYPE, "event_id": event_id, "subscription_id": sub.id, "sent_at": now}
    )
    store = services.store
    await store.store_event(
        event_id=event_id, source=TEST_SOURCE, event_type=TEST_EVENT_TYPE, body=body, now_ms=now
    )
    delivery = NewDelivery(new_id("dlv", now), sub.id, DeliveryMode.BEST_EFFORT, now)
    await store.add_deliveries(event_id, now, [delivery], fan_out=False)
    # An operator's explicit test goes out even while the subscription is paused.
    await services.attempter.run(delivery.id, 1, Trigger.MANUAL, sub.id, ignore_pause=True)
    result = await store.get_delivery(delivery.id)
    assert result is not None
    return TestResult(
        event_id=event_id,
        delivery_id=delivery.id,
        status=result.status,
        status_code=result.last_status_code,
        error=result.last_error,
    )


@router.delete("/subscriptions/{sub_id}", status_code=204)
async def delete_subscription(sub_id: str, services: ServicesDep) -> Response:
    await services.store.delete_subscription(await _subscription(services, sub_id))
    log.info("subscription.deleted", subscription_id=sub_id)
    return Response(status_code=204)
