"""Fixtures: a real redis-server, real HTTP receivers, the real app and the real worker."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from config.settings import RetrySettings, Settings
from relay.api.app import create_app
from relay.delivery import queue
from relay.devtools.embedded_redis import EmbeddedRedis
from relay.devtools.receiver import Receiver
from relay.storage import Store
from workers.main import build_worker

ADMIN_TOKEN = "test-admin-token"
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def ms_of(answered: object) -> int:
    """Epoch milliseconds of a time the API answered (an RFC 3339 string, to the ms)."""
    assert isinstance(answered, str), f"not an RFC 3339 string: {answered!r}"
    assert answered.endswith("Z"), answered
    return round(datetime.fromisoformat(answered).timestamp() * 1000)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """A throwaway redis-server for the session, or RELAY_TEST_REDIS_URL (its DB is flushed)."""
    given = os.environ.get("RELAY_TEST_REDIS_URL")
    if given:
        yield given
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    client = aioredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    return redis_server_url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def store_for(redis: aioredis.Redis, settings: Settings) -> Store:
    return Store(redis, queue.job_queue(settings.queue_name), settings.retention_ms)


@pytest.fixture
def store(redis: aioredis.Redis, settings: Settings) -> Store:
    return store_for(redis, settings)


@pytest.fixture
def make_settings(redis_url: str) -> Callable[..., Settings]:
    """Settings with a tiny retry schedule, set through configuration like any deployment."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "admin_token": ADMIN_TOKEN,
            "queue_name": "relay:test-queue",
            "retry": RetrySettings(
                max_attempts=4, initial_s=0.05, exp_base=2, max_wait_s=0.2, jitter_s=0
            ),
            "fanout_grace_s": 0,
            "delivery_timeout_s": 2,
            "best_effort_timeout_s": 1,
            "job_timeout_s": 10,
            # The transform tests make bodies past this cap: past 25 MiB, the default, they
            # would take seconds each.
            "max_body_bytes": 1024 * 1024,
            # The receivers live on loopback, which production settings refuse.
            "allowed_private_networks": ("127.0.0.0/8", "::1/128"),
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            yield client


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in process. ASGITransport returns after background tasks have run."""
    async with running_app(create_app(settings)) as client:
        yield client


WorkerRun = Callable[..., Awaitable[None]]


@pytest.fixture
def run_worker(settings: Settings) -> WorkerRun:
    """Run the real ARQ worker in burst mode until its queue is empty."""

    async def run(custom: Settings | None = None) -> None:
        s = custom or settings
        # arq's burst mode returns once the queue is empty, then waits for the jobs still
        # running: a job armed meanwhile by one of them (a lane handed on, an operational
        # event fanned out by an attempt) would be left behind. Run again until none is.
        for _ in range(5):
            pool = queue.connect(s)
            worker = build_worker(s, pool, burst=True, handle_signals=False)
            try:
                await worker.main()
            finally:
                await worker.close()
            check = queue.connect(s)
            try:
                if await check.zcard(s.queue_name) == 0:
                    return
            finally:
                await check.aclose()

    return run


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def create_source(api: httpx.AsyncClient, name: str = "github", **spec: Any) -> None:
    body = {"event_type_header": "X-GitHub-Event", "idempotency_header": "X-GitHub-Delivery"}
    body.update(spec)
    r = await api.put(f"/api/sources/{name}", json=body, headers=AUTH)
    assert r.status_code in (200, 201), r.text


async def create_subscription(api: httpx.AsyncClient, url: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "sources": ["github"]}
    body.update(spec)
    r = await api.post("/api/subscriptions", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def event_count(api: httpx.AsyncClient) -> int:
    """How many events the relay keeps, as its API lists them."""
    r = await api.get("/api/events", params={"limit": 500}, headers=AUTH)
    assert r.status_code == 200, r.text
    return len(r.json()["data"])


# Retention must outlast the retry schedule; these tests keep both to about a second.
SHORT_LIVED = RetrySettings(max_attempts=4, initial_s=0.05, exp_base=2, max_wait_s=0.2,
                            jitter_s=0, max_age_s=0.5)  # fmt: skip


async def ingest(
    api: httpx.AsyncClient,
    event_type: str = "push",
    body: bytes = b"{}",
    *,
    source: str = "github",
    content_type: str = "application/json",
) -> str:
    r = await api.post(
        f"/ingest/{source}",
        content=body,
        headers={"X-GitHub-Event": event_type, "content-type": content_type},
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    r = await api.get(path, params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def rebinding_dns(app: FastAPI) -> None:
    """Host names resolve to a public address when a subscription is made, and to what they
    really are (localhost: 127.0.0.1) when it is delivered to, as after a DNS change: only
    the connect-time check stands between the relay and loopback. Call inside the app's
    lifespan."""

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    app.state.services.subscriptions.resolve = public


# --- the fault suite's figures (tests/faults), printed after every run that made some -----
FAULT_FIGURE = "fault_figure"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        f"{report.nodeid.rpartition('::')[2]}: {name} = {value}"
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", None) == "call"
        for key, (name, value) in getattr(report, "user_properties", [])
        if key == FAULT_FIGURE
    ]
    if lines:
        terminalreporter.section("fault figures")
        for line in lines:
            terminalreporter.write_line(line)
