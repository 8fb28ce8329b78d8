"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from relay.api.auth import AccessDep
from relay.api.problems import Problem
from relay.api.scope import sees_subscription
from relay.api.services import Services
from relay.domain.access import Access


# Both dependencies are async: FastAPI runs a plain `def` one in its thread pool, and that
# hop on every request cost far more than the work itself (16% of ingest's samples).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def known_subscription(services: Services, access: Access, sub_id: str | None) -> None:
    """A filter naming a subscription that never existed is a typo, not an empty result;
    one outside a scoped token's sources answers the same."""
    if sub_id is None:
        return
    known = await services.store.subscriptions.known(sub_id)
    if not known or not await sees_subscription(services, access, sub_id):
        raise Problem(404, f"no subscription {sub_id!r}")


async def _subscription_filter(
    services: ServicesDep, access: AccessDep, subscription_id: str | None = None
) -> None:
    await known_subscription(services, access, subscription_id)


# On routes that take ``?subscription_id=``: 404 for an id that never existed.
KnownSubscriptionFilter = Depends(_subscription_filter)
