"""Admin API: sources and subscriptions (bearer token: ``RELAY_ADMIN_TOKEN``)."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from relay.api.deps import AdminDep, ServicesDep
from relay.clock import now_ms
from relay.ids import new_id
from relay.models import (
    SOURCE_NAME_PATTERN,
    SecretRotated,
    SourceIn,
    Subscription,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPatch,
)
from relay.problems import Problem
from relay.signing import generate_secret

router = APIRouter(prefix="/api", dependencies=[AdminDep], tags=["admin"])
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


async def _subscription(services: ServicesDep, sub_id: str) -> Subscription:
    sub = await services.store.get_subscription(sub_id)
    if sub is None:
        raise Problem(404, f"no subscription {sub_id!r}")
    return sub


@router.post("/subscriptions", status_code=201, response_model=SubscriptionCreated)
async def create_subscription(spec: SubscriptionIn, services: ServicesDep) -> SubscriptionCreated:
    """Create a subscription. Its signing secret is in this response and never again."""
    now = now_ms()
    sub = Subscription(
        id=new_id("sub", now), secret=generate_secret(), created_at=now, updated_at=now,
        **dict(spec),
    )  # fmt: skip
    await services.store.save_subscription(sub)
    log.info("subscription.created", subscription_id=sub.id, sources=sub.sources)
    return SubscriptionCreated.model_validate(sub.model_dump(exclude={"previous_secret"}))


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
    sub = await _subscription(services, sub_id)
    changes = patch.model_dump(exclude_unset=True)
    if changes.get("enabled") is True:
        changes["disabled_reason"] = None
    updated = Subscription.model_validate(
        {**sub.model_dump(), **changes, "updated_at": max(now_ms(), sub.updated_at + 1)}
    )
    await services.store.save_subscription(updated, old_sources=sub.sources)
    log.info("subscription.updated", subscription_id=sub_id, fields=sorted(changes))
    return updated.public()


@router.post("/subscriptions/{sub_id}/rotate-secret")
async def rotate_secret(sub_id: str, services: ServicesDep) -> SecretRotated:
    """Issue a new signing secret (shown only here). For ``RELAY_SECRET_ROTATION_OVERLAP_S``
    deliveries are signed with both the new and the previous secret."""
    sub = await _subscription(services, sub_id)
    now = now_ms()
    expires = now + services.settings.secret_rotation_overlap_s * 1000
    rotated = sub.model_copy(
        update={
            "secret": generate_secret(),
            "previous_secret": sub.secret,
            "previous_secret_expires_at": expires,
            "updated_at": max(now, sub.updated_at + 1),
        }
    )
    await services.store.save_subscription(rotated, old_sources=sub.sources)
    log.info("subscription.secret_rotated", subscription_id=sub_id, overlap_until=expires)
    return SecretRotated(id=sub_id, secret=rotated.secret, previous_secret_expires_at=expires)


@router.delete("/subscriptions/{sub_id}", status_code=204)
async def delete_subscription(sub_id: str, services: ServicesDep) -> Response:
    await services.store.delete_subscription(await _subscription(services, sub_id))
    log.info("subscription.deleted", subscription_id=sub_id)
    return Response(status_code=204)
