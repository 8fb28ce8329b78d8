"""The listener and tail routes' refusals, and a listener's lane left alone by the workers.
The flows themselves run with real processes in tests/faults/test_listen_tail.py."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from config.settings import Settings
from relay.api.app import create_app
from relay.delivery.listen import NotWaiting
from relay.devtools.receiver import Receiver
from relay.domain.outcome import AttemptResult
from tests.conftest import AUTH, WorkerRun, create_source, get, ingest, running_app
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


async def test_a_report_taken_by_another_api_process_reaches_the_waiting_stream(
    settings: Settings, receiver: Receiver
) -> None:
    # `relay serve --workers 2`: the stream is held by one process, the report may reach
    # the other. Two apps over one Redis stand for the two processes.
    async with running_app(create_app(settings)) as one, running_app(create_app(settings)) as two:
        await create_source(one)
        created = await _listener(one, receiver.url)
        sub_id = created["id"]
        holding, other = (c._transport.app.state.services for c in (one, two))  # type: ignore[attr-defined]
        frames = holding.listeners.stream(sub_id)
        assert (await anext(frames)).kind == "hello"
        await ingest(one)
        delivery = await anext(frames)
        assert delivery.kind == "delivery"
        delivery_id = delivery.data["delivery_id"]
        waiting = asyncio.create_task(anext(frames))
        try:
            with pytest.raises(NotWaiting):  # not that listener's delivery
                await other.listeners.report("sub_other", delivery_id, AttemptResult(200))
            await other.listeners.report(
                sub_id, delivery_id, AttemptResult(202, response_excerpt="from two")
            )
            for _ in range(50):
                shown = await get(one, f"/api/deliveries/{delivery_id}")
                if shown["status"] == "succeeded":
                    break
                await asyncio.sleep(0.1)
            assert shown["status"] == "succeeded"
            assert shown["attempt_log"][0]["status_code"] == 202
            assert shown["attempt_log"][0]["response_excerpt"] == "from two"
            with pytest.raises(NotWaiting):  # answered already
                await other.listeners.report(sub_id, delivery_id, AttemptResult(200))
        finally:
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            await frames.aclose()
