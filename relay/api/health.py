"""Liveness, readiness and metrics: what load balancers and Prometheus ask."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from relay.api.deps import ServicesDep
from relay.api.problems import Problem, problem_response
from relay.delivery.connection import OUT_OF_MEMORY
from relay.delivery.lane import observe_lanes
from relay.domain.clock import now_ms
from relay.domain.eviction import eviction_problem
from relay.observability import metrics
from relay.storage import HEARTBEAT_STALE_MS

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready, with the reason."}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when Redis answers, takes writes, keeps every key (``maxmemory-policy
    noeviction``) and a worker's heartbeat was seen in the last 15 s."""
    housekeeping = services.store.housekeeping
    health = services.health
    if health.evicting is not None:
        detail = eviction_problem(health.evicting) or ""
        return problem_response(Problem(503, detail, title="Not ready", reason="evicting"))
    if health.cause == OUT_OF_MEMORY:
        detail = "Redis is out of memory (it reached maxmemory): it refuses writes"
        return problem_response(Problem(503, detail, title="Not ready", reason=OUT_OF_MEMORY))
    try:
        async with asyncio.timeout(2):
            await housekeeping.ping()
            workers = await housekeeping.live_workers(now_ms())
    except (TimeoutError, OSError, ConnectionError) as exc:
        return problem_response(
            Problem(503, f"Redis is not reachable: {exc.__class__.__name__}", title="Not ready")
        )
    except Exception as exc:  # redis-py's own errors (ConnectionError subclasses and others)
        return problem_response(
            Problem(503, f"Redis is not usable: {exc.__class__.__name__}", title="Not ready")
        )
    if workers == 0:
        detail = f"no worker heartbeat in the last {HEARTBEAT_STALE_MS // 1000} s"
        return problem_response(Problem(503, detail, title="Not ready", workers=0))
    return JSONResponse({"status": "ready", "redis": "ok", "workers": workers})


@router.get("/metrics", response_class=Response)
async def get_metrics(services: ServicesDep) -> Response:
    """Prometheus text exposition; queue depth is read from Redis at scrape time."""
    await observe_lanes(services.store, now_ms())
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
