"""Dependencies shared by the routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from relay.api.problems import Problem
from relay.api.services import Services


# Both dependencies are async: FastAPI runs a plain `def` one in its thread pool, and that
# hop on every request cost far more than the work itself (16% of ingest's samples).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False, description="RELAY_ADMIN_TOKEN")


async def require_admin(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token = services.settings.admin_token
    if token is None:
        raise Problem(503, "the admin API is disabled: RELAY_ADMIN_TOKEN is not set")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise Problem(
            401,
            "a valid admin bearer token is required",
            headers={"www-authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)


async def known_subscription(services: Services, sub_id: str | None) -> None:
    """A filter naming a subscription that never existed is a typo, not an empty result."""
    if sub_id is not None and not await services.store.subscriptions.known(sub_id):
        raise Problem(404, f"no subscription {sub_id!r}")


async def _subscription_filter(services: ServicesDep, subscription_id: str | None = None) -> None:
    await known_subscription(services, subscription_id)


# On routes that take ``?subscription_id=``: 404 for an id that never existed.
KnownSubscriptionFilter = Depends(_subscription_filter)
