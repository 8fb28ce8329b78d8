"""The FastAPI application: wiring only; routes live in ``relay.api``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from redis.asyncio import Redis

from config.settings import Settings, get_settings
from relay.api import (
    health,
    ingest,
    inspect,
    listen,
    preview,
    problems,
    replay,
    sources,
    subscriptions,
    tokens,
)
from relay.api.auth import REQUIRED_ROLE
from relay.api.bodies import BodyBudget
from relay.api.methods import AllowedMethods
from relay.api.services import Services
from relay.delivery import ops, outbound, queue
from relay.delivery.attempt import Attempter
from relay.delivery.connection import API, UNAVAILABLE, RedisHealth, redis_client
from relay.delivery.fanout import SubscriptionCache
from relay.delivery.redis_watch import RedisWatch
from relay.observability import logs, tracing
from relay.runtime import settle_after_startup
from relay.storage import Store
from relay.ui import install as install_ui

log = structlog.get_logger("relay.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Connects on first use: the API starts, and answers 503, while Redis is away.
        health = RedisHealth.for_settings(settings)
        redis = redis_client(settings, API, Redis, health)
        # Lanes are armed from Lua in the fan-out step: the API needs no ARQ connection.
        store = Store(redis, queue.job_queue(settings.queue_name), settings.retention_ms)
        sender = outbound.make_sender(64, settings.address_guard)
        attempter = Attempter(store, sender, settings)
        services = app.state.services = Services.build(settings, store, attempter, health)
        cache = SubscriptionCache(store)
        watch = RedisWatch(store, health, settings, lambda ids: ops.publish(store, cache, ids))
        watching = watch.start()
        try:
            for source in await store.sources.all():
                if source.verification.scheme == "none":
                    log.warning("source.unverified", source=source.name, scheme="none")
        except UNAVAILABLE:
            pass  # logged as redis.unavailable; sources are checked again when saved
        if settings.admin_token is None:
            log.warning("api.admin_disabled", reason="RELAY_ADMIN_TOKEN is not set")
        settle_after_startup()
        log.info("api.started")
        try:
            yield
        finally:
            watching.cancel()
            await services.fanout.close()
            await sender.aclose()
            # Spans still waiting for their batch go out before the process ends.
            if tracing.active().enabled:
                await asyncio.to_thread(tracing.active().flush)
            await redis.aclose()
            log.info("api.stopped")

    app = FastAPI(
        title="Webhook relay",
        version="0.1.0",
        summary="Acknowledge webhooks at once, keep every event, deliver with retries.",
        lifespan=lifespan,
        # Served by relay.ui from vendored assets: the CDN's pages are blank offline.
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    app.add_middleware(AllowedMethods)
    # Outermost: a body refused for memory is refused before anything reads it.
    app.add_middleware(BodyBudget, limit=settings.body_buffer_bytes)
    app.include_router(ingest.router)
    app.include_router(sources.router)
    app.include_router(subscriptions.router)
    app.include_router(preview.router)
    app.include_router(inspect.router)
    app.include_router(replay.router)
    app.include_router(tokens.router)
    app.include_router(listen.router)
    app.include_router(health.router)
    install_ui(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the role each admin route needs said in its description
    too (``x-required-role`` is for tools; people read the description)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        for operations in schema["paths"].values():
            for operation in operations.values():
                role = operation.get(REQUIRED_ROLE)
                if role:
                    said = operation.get("description", "")
                    operation["description"] = f"{said}\n\nRequires the **{role}** role.".strip()
        app.openapi_schema = schema
    return app.openapi_schema


def serve_app() -> FastAPI:
    """The factory `relay serve` hands to uvicorn: each worker process sets up its own logs."""
    settings = get_settings()
    tracing.configure(settings.trace_propagate)
    logs.configure(settings.log_format, settings.log_level, access_log=settings.access_log)
    return create_app(settings)
