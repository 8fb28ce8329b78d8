"""POST /ingest/{source}: acknowledgement, idempotency, limits and what gets stored."""

from __future__ import annotations

import asyncio

import httpx
from structlog.testing import capture_logs

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


async def test_a_sources_own_body_cap_wins_over_the_global_one(make_settings) -> None:
    from relay.api.app import create_app
    from tests.conftest import running_app

    async with running_app(create_app(make_settings(max_body_bytes=1000))) as api:
        await create_source(api, "small", max_body_bytes=100)
        await create_source(api, "large", max_body_bytes=5000)
        shown = (await api.get("/api/sources/small", headers=AUTH)).json()
        assert shown["max_body_bytes"] == 100

        r = await api.post("/ingest/small", content=b"x" * 101)
        assert r.status_code == 413
        assert r.json()["detail"] == "the body exceeds 100 bytes"
        assert (await api.post("/ingest/small", content=b"x" * 100)).status_code == 202
        assert (await api.post("/ingest/large", content=b"x" * 5000)).status_code == 202
        assert (await api.post("/ingest/large", content=b"x" * 5001)).status_code == 413
        assert await event_count(api) == 2

        for bad in (0, 600 * 1024 * 1024):
            r = await api.put("/api/sources/bad", json={"max_body_bytes": bad}, headers=AUTH)
            assert r.status_code == 422


async def test_an_event_type_or_key_too_long_is_400_naming_the_header(
    api: httpx.AsyncClient,
) -> None:
    await create_source(api)
    long_type = {"X-GitHub-Event": "p" * 257, "X-GitHub-Delivery": "d-1"}
    r = await api.post("/ingest/github", content=b"{}", headers=long_type)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["reason"] == "event_type_too_long"
    assert r.json()["header"] == "X-GitHub-Event"
    assert r.json()["detail"] == "the X-GitHub-Event header is longer than 256 characters"
    assert "ppp" not in r.text

    long_key = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "k" * 257}
    r = await api.post("/ingest/github", content=b"{}", headers=long_key)
    assert r.status_code == 400
    assert (r.json()["reason"], r.json()["header"]) == (
        "idempotency_key_too_long",
        "X-GitHub-Delivery",
    )
    assert await event_count(api) == 0

    at_the_bound = {"X-GitHub-Event": "p" * 256, "X-GitHub-Delivery": "k" * 256}
    r = await api.post("/ingest/github", content=b"{}", headers=at_the_bound)
    assert r.status_code == 202
    assert await event_count(api) == 1


async def test_an_event_type_read_by_the_scheme_is_bounded_too(make_settings) -> None:
    import base64
    import time

    from relay.api.app import create_app
    from relay.domain.signing import signed_headers
    from tests.conftest import running_app

    secret = "whsec_" + base64.b64encode(b"limits-test-key-0123456789abcdef").decode()
    verification = {"scheme": "standard-webhooks", "secrets": [secret]}
    async with running_app(create_app(make_settings(max_event_type_length=10))) as api:
        await create_source(api, "acme", event_type_header=None, idempotency_header=None,
                            verification=verification)  # fmt: skip

        async def post(body: bytes, msg_id: str) -> httpx.Response:
            headers = signed_headers([secret], msg_id, int(time.time()), body)
            return await api.post("/ingest/acme", content=body, headers=headers)

        r = await post(b'{"type":"user.created.with.a.long.name"}', "msg_1")
        assert r.status_code == 400
        assert r.json()["header"] is None
        assert r.json()["detail"] == (
            "the event type the standard-webhooks scheme reads is longer than 10 characters"
        )
        assert (await post(b'{"type":"user.new"}', "msg_2")).status_code == 202
        assert await event_count(api) == 1


async def test_every_answer_names_its_request_and_the_log_line_says_the_same(
    api: httpx.AsyncClient,
) -> None:
    await create_source(api)
    with capture_logs() as logs:
        first = await api.post("/ingest/github", content=b"{}")
        second = await api.post("/ingest/github", content=b"{}")
        given = await api.post("/ingest/github", content=b"{}", headers={"X-Request-Id": "abc-1"})
    ids = [r.headers["x-request-id"] for r in (first, second, given)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids[:2])
    assert ids[0] != ids[1]
    assert ids[2] == "abc-1"  # the caller's own id is kept
    accepted = [e for e in logs if e["event"] == "ingest.accepted"]
    assert [e["request_id"] for e in accepted] == ids
