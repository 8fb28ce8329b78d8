"""Admin API: sources, the named entry points webhooks are posted to."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from relay.api.auth import AccessDep, AuditedRoute, needs
from relay.api.deps import ServicesDep
from relay.api.problems import Problem, problem_docs
from relay.api.views import public_source
from relay.domain.access import Role
from relay.domain.clock import now_ms
from relay.domain.models import SOURCE_NAME_PATTERN, SourceIn

router = APIRouter(
    prefix="/api",
    tags=["admin"],
    route_class=AuditedRoute,
    responses=problem_docs(401, 403, 404, 422, 429, 503),
)
log = structlog.get_logger("relay.admin")


def _no_source(name: str) -> Problem:
    return Problem(404, f"no source named {name!r}")


@router.put("/sources/{name}", responses={201: {"description": "Created."}}, **needs(Role.ADMIN))
async def put_source(
    spec: SourceIn,
    services: ServicesDep,
    name: Annotated[str, Path(pattern=SOURCE_NAME_PATTERN, description="The source's name.")],
) -> JSONResponse:
    """Create or replace a source; webhooks for it are posted to ``/ingest/{name}``."""
    source, created = await services.store.sources.put(name, spec, now_ms())
    services.ingestor.forget(name)
    if source.verification.scheme == "none":
        log.warning("source.unverified", source=name, reason="verification scheme 'none'")
    log.info("source.saved", source=name, created=created, scheme=source.verification.scheme)
    return JSONResponse(public_source(source), status_code=201 if created else 200)


@router.get("/sources", **needs(Role.VIEWER))
async def list_sources(services: ServicesDep, access: AccessDep) -> dict[str, list[dict[str, Any]]]:
    """Every source (in the token's scope)."""
    found = [s for s in await services.store.sources.all() if access.sees_source(s.name)]
    return {"data": [public_source(s) for s in found]}


@router.get("/sources/{name}", **needs(Role.VIEWER))
async def get_source(name: str, services: ServicesDep) -> dict[str, Any]:
    found = await services.store.sources.get(name)
    if found is None:
        raise _no_source(name)
    return public_source(found[0])


@router.delete("/sources/{name}", status_code=204, **needs(Role.ADMIN))
async def delete_source(name: str, services: ServicesDep) -> Response:
    if not await services.store.sources.delete(name):
        raise _no_source(name)
    services.ingestor.forget(name)
    log.info("source.deleted", source=name)
    return Response(status_code=204)
