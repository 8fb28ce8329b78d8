"""POST /ingest/{source}: acknowledgement, idempotency, limits and what gets stored."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import AUTH, create_source, event_count


async def test_accepted_event_is_in_redis_before_the_answer(api: httpx.AsyncClient) -> None:
    await create_source(api)
    body = b"\x00\xffnot json at all"
    r = await api.post(
        "/ingest/github",
        content=body,
        headers={
            "content-type": "application/octet-stream",
            "X-GitHub-Event": "ping",
            "User-Agent": "GitHub-Hookshot/1",
            "X-Not-Kept": "dropped",
        },
    )
    assert r.status_code == 202
    event_id = r.json()["event_id"]
    assert event_id.startswith("evt_")
    assert len(event_id) == 30
    assert (await api.get(f"/api/events/{event_id}/body", headers=AUTH)).content == body

    r = await api.get(f"/api/events/{event_id}", headers=AUTH)
    event = r.json()
    assert event["source"] == "github"
    assert event["event_type"] == "ping"
    assert event["content_type"] == "application/octet-stream"
    assert event["body_bytes"] == len(body)
    assert event["headers"] == {"user-agent": "GitHub-Hookshot/1", "x-github-event": "ping"}
    assert event["fanned_out"] is True
    assert "body" not in event


async def test_duplicate_delivery_header_stores_nothing_new(api: httpx.AsyncClient) -> None:
    await create_source(api)
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}
    first = await api.post("/ingest/github", content=b"{}", headers=headers)
    again = await api.post("/ingest/github", content=b"{}", headers=headers)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}
    assert await event_count(api) == 1


async def test_concurrent_duplicates_make_exactly_one_event(api: httpx.AsyncClient) -> None:
    await create_source(api)
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "same"}
    answers = await asyncio.gather(
        *(api.post("/ingest/github", content=b"{}", headers=headers) for _ in range(25))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 24 + [202]
    assert len({a.json()["event_id"] for a in answers}) == 1
    assert await event_count(api) == 1


async def test_unknown_source_is_404_problem(api: httpx.AsyncClient) -> None:
    r = await api.post("/ingest/nope", content=b"{}")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404
    assert "nope" in r.json()["detail"]
    assert await event_count(api) == 0


async def test_body_over_the_cap_is_413_and_not_stored(
    make_settings,
) -> None:
    from relay.api.app import create_app
    from tests.conftest import running_app

    async with running_app(create_app(make_settings(max_body_bytes=1000))) as api:
        await create_source(api)
        assert (await api.post("/ingest/github", content=b"x" * 1000)).status_code == 202

        r = await api.post("/ingest/github", content=b"x" * 1001)
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"

        async def chunks():  # no content-length: the cap must hold while streaming
            for _ in range(50):
                yield b"y" * 100

        r = await api.post("/ingest/github", content=chunks())
        assert r.status_code == 413
        assert await event_count(api) == 1


async def test_deleted_source_stops_ingest_at_once(api: httpx.AsyncClient) -> None:
    await create_source(api)
    assert (await api.post("/ingest/github", content=b"{}")).status_code == 202
    assert (await api.delete("/api/sources/github", headers=AUTH)).status_code == 204
    assert (await api.post("/ingest/github", content=b"{}")).status_code == 404


async def test_source_changed_elsewhere_is_noticed(api: httpx.AsyncClient, store) -> None:
    # Another API process changes the source: this process's cache is refreshed by the
    # revision check inside the ingest script, not by waiting for a TTL.
    from relay.domain.clock import now_ms
    from relay.domain.models import SourceIn

    await create_source(api, event_type_header="X-GitHub-Event")
    await api.post("/ingest/github", content=b"{}", headers={"X-GitHub-Event": "push"})
    await store.sources.put("github", SourceIn(event_type_header="X-Kind"), now_ms())
    r = await api.post("/ingest/github", content=b"{}", headers={"X-Kind": "changed"})
    event = (await api.get(f"/api/events/{r.json()['event_id']}", headers=AUTH)).json()
    assert event["event_type"] == "changed"
    await store.sources.delete("github")
    assert (await api.post("/ingest/github", content=b"{}")).status_code == 404
