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
