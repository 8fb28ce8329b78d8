"""The listener and tail routes' refusals, and a listener's lane left alone by the workers.
The flows themselves run with real processes in tests/faults/test_listen_tail.py."""

from __future__ import annotations

from typing import Any

import httpx

from relay.devtools.receiver import Receiver
from tests.conftest import AUTH, WorkerRun, create_source, get, ingest
from tests.ui.test_pages import sign_in


async def _listener(api: httpx.AsyncClient, url: str) -> dict[str, Any]:
    r = await api.post(
        "/api/listeners", json={"source": "github", "forward_url": url}, headers=AUTH
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_workers_leave_a_listeners_deliveries_waiting(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    created = await _listener(api, receiver.url)
    assert created["secret"].startswith("whsec_")
    await ingest(api)
    await run_worker()
    assert receiver.requests == []
    listed = await get(api, "/api/deliveries", subscription_id=created["id"])
    assert [d["status"] for d in listed["data"]] == ["pending"]
    # Resuming it would have a worker POST to the laptop's URL from the relay's host.
    r = await api.post(f"/api/subscriptions/{created['id']}/resume", headers=AUTH)
    assert r.status_code == 422
    assert "relay listen" in r.json()["detail"]
    # A test would be sent from here too.
    r = await api.post(f"/api/subscriptions/{created['id']}/test", headers=AUTH)
    assert r.status_code == 422
    # The dashboard's resume button says so too (not a 500).
    csrf = await sign_in(api)
    r = await api.post(f"/ui/subscriptions/{created['id']}/resume", data={"csrf_token": csrf})
    assert r.status_code == 422
    assert receiver.requests == []


async def test_listener_routes_refuse_what_they_cannot_do(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    r = await api.post(
        "/api/listeners", json={"source": "nosuch", "forward_url": receiver.url}, headers=AUTH
    )
    assert r.status_code == 422
    await create_source(api)
    r = await api.post(
        "/api/listeners", json={"source": "github", "forward_url": "not a url"}, headers=AUTH
    )
    assert r.status_code == 422
    assert (await api.get("/api/listeners/sub_nope/stream", headers=AUTH)).status_code == 404
    created = await _listener(api, receiver.url)
    report = f"/api/listeners/{created['id']}/deliveries/dlv_nope/attempt"
    r = await api.post(report, json={"status_code": 200}, headers=AUTH)
    assert r.status_code == 409
    r = await api.post(report, json={"status_code": 99}, headers=AUTH)
    assert r.status_code == 422
    assert (await api.delete(f"/api/listeners/{created['id']}", headers=AUTH)).status_code == 204
    assert (await api.delete(f"/api/listeners/{created['id']}", headers=AUTH)).status_code == 404
    # An ordinary subscription is no listener.
    sub = await api.post(
        "/api/subscriptions", json={"url": receiver.url, "sources": ["github"]}, headers=AUTH
    )
    stream = await api.get(f"/api/listeners/{sub.json()['id']}/stream", headers=AUTH)
    assert stream.status_code == 404


async def test_tail_and_listen_need_the_admin_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/tail")).status_code == 401
    assert (await api.post("/api/listeners", json={})).status_code == 401
    assert (await api.get("/api/tail?status=ok", headers=AUTH)).status_code == 422
