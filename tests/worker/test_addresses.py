"""Subscribers may not point the relay at its own network (SSRF), unless allowed."""

from __future__ import annotations

import httpx
import pytest

from relay.api.app import create_app
from relay.devtools.receiver import Receiver
from tests.conftest import (
    AUTH,
    WorkerRun,
    create_source,
    create_subscription,
    rebinding_dns,
    running_app,
)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "rebound"])
async def test_loopback_receivers_are_refused_unless_allowed(
    make_settings, run_worker: WorkerRun, receiver: Receiver, host: str
) -> None:
    settings = make_settings(allowed_private_networks=())  # the production default
    app = create_app(settings)
    async with running_app(app) as api:
        await create_source(api)
        url = receiver.url.replace("127.0.0.1", "localhost" if host == "rebound" else host)
        if host == "rebound":  # public when made: only the connection's address tells
            rebinding_dns(app)
            await create_subscription(api, url)
        else:  # an address, or a name that resolves to one: refused when made
            r = await api.post(
                "/api/subscriptions", json={"url": url, "sources": ["github"]}, headers=AUTH
            )
            assert r.status_code == 422
            assert "RELAY_ALLOWED_PRIVATE_NETWORKS" in r.text
            return
        event_id = (await api.post("/ingest/github", content=b"{}")).json()["event_id"]
        await run_worker(settings)
        [delivery] = (await api.get(f"/api/events/{event_id}", headers=AUTH)).json()["deliveries"]
    assert receiver.requests == []
    assert delivery["status"] == "dead"  # no retry can make it allowed
    assert delivery["attempts"] == 1
    assert delivery["last_error"] == "BlockedAddress"


async def test_best_effort_deliveries_are_guarded_too(make_settings, receiver: Receiver) -> None:
    settings = make_settings(allowed_private_networks=())
    app = create_app(settings)
    async with running_app(app) as api:
        rebinding_dns(app)
        await create_source(api)
        await create_subscription(
            api, receiver.url.replace("127.0.0.1", "localhost"), mode="best_effort"
        )
        event_id = (await api.post("/ingest/github", content=b"{}")).json()["event_id"]
        [delivery] = (await api.get(f"/api/events/{event_id}", headers=AUTH)).json()["deliveries"]
    assert receiver.requests == []
    assert delivery["last_error"] == "BlockedAddress"


async def test_allowed_networks_are_delivered_to(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    # The test settings allow 127.0.0.0/8, as an operator would allow an internal network.
    await create_source(api)
    await create_subscription(api, receiver.url.replace("127.0.0.1", "localhost"))
    await api.post("/ingest/github", content=b"{}")
    await run_worker()
    assert len(receiver.wait_for(1)) == 1
