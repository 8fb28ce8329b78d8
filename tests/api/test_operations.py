"""Issue 4 through the real API: inspection, replay, dead letters, pause, health, metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from relay.api.app import create_app
from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.receiver import Receiver, Reply
from relay.domain.clock import now_ms
from relay.storage import HEARTBEAT_STALE_MS, Store
from tests.conftest import (
    AUTH,
    WorkerRun,
    create_source,
    create_subscription,
    get,
    ingest,
    running_app,
)


async def test_events_listing_filters_and_pages(api: httpx.AsyncClient) -> None:
    await create_source(api)
    await create_source(api, "stripe")
    ids = [await ingest(api, "push" if i % 2 else "issues") for i in range(7)]
    await asyncio.sleep(0.01)
    boundary = datetime.now(UTC)
    await asyncio.sleep(0.01)
    other = (await api.post("/ingest/stripe", content=b"{}")).json()["event_id"]

    listed = await get(api, "/api/events", limit=50)
    assert [e["id"] for e in listed["data"]] == [other, *reversed(ids)]  # newest first
    assert listed["next_cursor"] is None

    pages, cursor = [], None
    while True:
        page = await get(
            api, "/api/events", source="github", limit=3, **({"cursor": cursor} if cursor else {})
        )
        pages.append([e["id"] for e in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i for p in pages for i in p] == list(reversed(ids))
    assert [len(p) for p in pages[:2]] == [3, 3]

    pushes = await get(api, "/api/events", event_type="push")
    assert {e["event_type"] for e in pushes["data"]} == {"push"}
    assert len(pushes["data"]) == 3
    since = await get(api, "/api/events", since=boundary.isoformat())
    assert [e["id"] for e in since["data"]] == [other]
    until = await get(api, "/api/events", until=boundary.isoformat())
    assert other not in [e["id"] for e in until["data"]]
    bad = await api.get("/api/events", params={"since": "yesterday"}, headers=AUTH)
    assert bad.status_code == 422


async def test_event_body_is_returned_byte_for_byte(api: httpx.AsyncClient) -> None:
    await create_source(api)
    body = b"\x00\x01binary\xff"
    r = await api.post(
        "/ingest/github", content=body, headers={"content-type": "application/x-thing"}
    )
    got = await api.get(f"/api/events/{r.json()['event_id']}/body", headers=AUTH)
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["content-type"] == "application/x-thing"
    assert (await api.get("/api/events/evt_nope/body", headers=AUTH)).status_code == 404


async def test_event_status_filter_finds_failed_deliveries(
    make_settings, api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    # One attempt at a time, in the lane's order: the scripted 400 goes to `bad`.
    await create_subscription(api, receiver.url, max_concurrency=1)
    receiver.script(Reply(status=400))
    bad = await ingest(api)
    good = await ingest(api)
    await run_worker()
    dead = await get(api, "/api/events", status="dead")
    assert [e["id"] for e in dead["data"]] == [bad]
    ok = await get(api, "/api/events", status="succeeded")
    assert [e["id"] for e in ok["data"]] == [good]


async def make_dead(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver, count: int
) -> dict[str, Any]:
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    receiver.default = Reply(status=500)
    for _ in range(count):
        await ingest(api)
    await run_worker()
    return sub


async def test_deliveries_listing_and_manual_retry(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    sub = await make_dead(api, run_worker, receiver, 2)
    dead = await get(api, "/api/deliveries", subscription_id=sub["id"], status="dead")
    assert len(dead["data"]) == 2
    assert all(d["attempts"] == 4 for d in dead["data"])
    assert (await get(api, "/api/deliveries", status="succeeded"))["data"] == []
    one = await get(api, "/api/deliveries", limit=1)
    assert one["next_cursor"] == one["data"][0]["id"]

    receiver.default = Reply(status=200)
    target = dead["data"][0]["id"]
    r = await api.post(f"/api/deliveries/{target}/retry", headers=AUTH)
    assert r.status_code == 202
    assert r.json()["status"] == "pending"
    await run_worker()
    detail = await get(api, f"/api/deliveries/{target}")
    assert detail["status"] == "succeeded"
    assert [a["number"] for a in detail["attempt_log"]] == [1, 2, 3, 4, 5]
    assert detail["attempt_log"][-1]["trigger"] == "manual"
    assert receiver.requests[-1].headers["x-relay-attempt"] == "5"
    assert (await api.post("/api/deliveries/dlv_nope/retry", headers=AUTH)).status_code == 404


async def test_manual_retry_of_a_dead_delivery_gets_a_fresh_schedule(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    sub = await make_dead(api, run_worker, receiver, 1)
    [dead] = (await get(api, "/api/dead-letters", subscription_id=sub["id"]))["data"]
    receiver.default = Reply(status=200)
    receiver.script(503)  # the manual attempt fails once more, then the schedule resumes
    await api.post(f"/api/deliveries/{dead['id']}/retry", headers=AUTH)
    await run_worker()
    detail = await get(api, f"/api/deliveries/{dead['id']}")
    assert detail["status"] == "succeeded"
    assert [a["outcome"] for a in detail["attempt_log"][4:]] == ["failed", "succeeded"]


async def test_event_replay_makes_new_deliveries_with_the_same_webhook_id(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    first = await create_subscription(api, receiver.url)
    event_id = await ingest(api)
    await run_worker()
    second_receiver = Receiver()
    try:
        second = await create_subscription(api, second_receiver.url)
        r = await api.post(f"/api/events/{event_id}/replay", json={}, headers=AUTH)
        assert r.status_code == 202
        assert {d["subscription_id"] for d in r.json()["deliveries"]} == {first["id"], second["id"]}
        r = await api.post(
            f"/api/events/{event_id}/replay",
            json={"subscription_ids": [second["id"]]},
            headers=AUTH,
        )
        assert [d["subscription_id"] for d in r.json()["deliveries"]] == [second["id"]]
        await run_worker()
        assert {g.headers["webhook-id"] for g in receiver.wait_for(2)} == {event_id}
        assert {g.headers["webhook-id"] for g in second_receiver.wait_for(2)} == {event_id}
    finally:
        second_receiver.close()
    event = await get(api, f"/api/events/{event_id}")
    assert len(event["deliveries"]) == 4
    missing = await api.post(
        f"/api/events/{event_id}/replay", json={"subscription_ids": ["sub_nope"]}, headers=AUTH
    )
    assert missing.status_code == 404
    assert (await api.post("/api/events/evt_nope/replay", json={}, headers=AUTH)).status_code == 404


async def test_dead_letters_bulk_replay_is_safe_to_repeat_and_purge(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    sub = await make_dead(api, run_worker, receiver, 3)
    listed = await get(api, "/api/dead-letters", subscription_id=sub["id"])
    assert listed["total"] == 3
    assert len(listed["data"]) == 3

    receiver.default = Reply(status=200)
    body = {"subscription_id": sub["id"]}
    first = await api.post("/api/dead-letters/replay", json=body, headers=AUTH)
    again = await api.post("/api/dead-letters/replay", json=body, headers=AUTH)
    assert first.json()["requeued"] == 3
    assert first.json()["remaining"] == 0
    assert again.json() == {"requeued": 0, "remaining": 0, "last": None}
    before = len(receiver.requests)
    await run_worker()
    assert len(receiver.requests) - before == 3  # once each, not twice
    assert (await get(api, "/api/dead-letters"))["total"] == 0

    receiver.default = Reply(status=500)
    await ingest(api)
    await run_worker()
    assert (await get(api, "/api/dead-letters"))["total"] == 1
    r = await api.delete("/api/dead-letters", params={"subscription_id": sub["id"]}, headers=AUTH)
    assert r.json() == {"purged": 1}
    assert (await get(api, "/api/dead-letters"))["total"] == 0


async def test_paused_subscription_waits_and_resumes_in_order(
    make_settings,
    api: httpx.AsyncClient,
    run_worker: WorkerRun,
    receiver: Receiver,
) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url, max_concurrency=1)
    r = await api.post(f"/api/subscriptions/{sub['id']}/pause", headers=AUTH)
    assert r.json()["paused"] is True
    ids = [await ingest(api, body=f'{{"n":{i}}}'.encode()) for i in range(3)]
    await run_worker()
    assert receiver.requests == []
    statuses = {
        d["status"] for e in ids for d in (await get(api, f"/api/events/{e}"))["deliveries"]
    }
    assert statuses == {"pending"}

    r = await api.post(f"/api/subscriptions/{sub['id']}/resume", headers=AUTH)
    assert r.json()["paused"] is False
    # One attempt at a time, so the receiver sees them in the order they are handed out.
    await run_worker()
    got = receiver.wait_for(3)
    assert [g.headers["webhook-id"] for g in got] == ids
    assert (await api.post("/api/subscriptions/sub_nope/pause", headers=AUTH)).status_code == 404


async def test_subscription_test_sends_a_signed_synthetic_event(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    import standardwebhooks

    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    r = await api.post(f"/api/subscriptions/{sub['id']}/test", headers=AUTH)
    assert r.status_code == 200
    assert r.json()["status"] == "succeeded"
    assert r.json()["status_code"] == 200
    [got] = receiver.wait_for(1)
    standardwebhooks.Webhook(sub["secret"]).verify(got.body, got.headers)
    assert got.headers["x-relay-event-type"] == "relay.test"
    receiver.script(503)
    r = await api.post(f"/api/subscriptions/{sub['id']}/test", headers=AUTH)
    assert r.json()["status"] == "dead"
    assert r.json()["status_code"] == 503


async def test_health_and_readiness(make_settings, store: Store) -> None:
    async with running_app(create_app(make_settings())) as api:
        assert (await api.get("/healthz")).json() == {"status": "ok"}
        r = await api.get("/readyz")
        assert r.status_code == 503
        assert "no worker heartbeat" in r.json()["detail"]
        await store.housekeeping.heartbeat("w1", now_ms())
        r = await api.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "redis": "ok", "workers": 1}
        await store.housekeeping.heartbeat("w1", now_ms() - HEARTBEAT_STALE_MS - 1)
        assert (await api.get("/readyz")).status_code == 503


async def test_readiness_fails_when_redis_goes_away(make_settings) -> None:
    server = EmbeddedRedis().start()
    try:
        async with running_app(create_app(make_settings(redis_url=server.url))) as api:
            await create_source(api)
            server.stop()
            r = await api.get("/readyz")
            assert r.status_code == 503
            assert "Redis" in r.json()["detail"]
            assert (await api.get("/healthz")).status_code == 200
            # Ingest cannot promise anything without Redis: a 503 the sender retries.
            r = await api.post("/ingest/github", content=b"{}")
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["retry-after"] == "5"
    finally:
        server.stop()


async def test_metrics_follow_ingest_and_delivery(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    def sample(text: str, name: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(name + " ")]
        return float(lines[0].split()[-1]) if lines else 0.0

    await create_source(api)
    await create_subscription(api, receiver.url)
    before = (await api.get("/metrics")).text
    receiver.script(503)
    await ingest(api)
    await run_worker()
    after = (await api.get("/metrics")).text
    ok = 'relay_delivery_attempts_total{outcome="succeeded",status_class="2xx"}'
    retry = 'relay_delivery_attempts_total{outcome="failed",status_class="5xx"}'
    assert sample(after, ok) - sample(before, ok) == 1
    assert sample(after, retry) - sample(before, retry) == 1
    e2e = "relay_end_to_end_seconds_count"
    assert sample(after, e2e) - sample(before, e2e) == 1
    assert (
        sample(after, "relay_retries_scheduled_total")
        - sample(before, "relay_retries_scheduled_total")
        == 1
    )
    accepted = 'relay_ingest_total{outcome="accepted",reason="",source="github"}'
    assert sample(after, accepted) - sample(before, accepted) == 1
    assert 'relay_queue_depth{state="dead"} 0.0' in after
    assert "relay_attempt_duration_seconds_bucket" in after


async def test_worker_exposes_metrics_on_its_own_port(make_settings, run_worker: WorkerRun) -> None:
    port = free_port()
    await run_worker(make_settings(worker_metrics_port=port))
    deadline = time.monotonic() + 5
    while True:
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{port}/metrics")
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    assert "relay_delivery_attempts_total" in r.text
    assert "relay_queue_depth" in r.text


@pytest.mark.parametrize("path", ["/api/events", "/api/deliveries", "/api/dead-letters"])
async def test_listings_need_the_token(api: httpx.AsyncClient, path: str) -> None:
    assert (await api.get(path)).status_code == 401


async def test_deleting_a_paused_subscription_turns_its_waiting_deliveries_into_dead_letters(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver, redis: aioredis.Redis
) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    await api.post(f"/api/subscriptions/{sub['id']}/pause", headers=AUTH)
    event_id = await ingest(api)
    await run_worker()
    assert (await api.delete(f"/api/subscriptions/{sub['id']}", headers=AUTH)).status_code == 204
    await run_worker()
    [delivery] = (await get(api, f"/api/events/{event_id}"))["deliveries"]
    assert delivery["status"] == "dead"
    assert delivery["last_error"] == "SubscriptionDeleted"
    assert receiver.requests == []
    assert (await get(api, "/api/dead-letters"))["total"] == 1
    # Nothing of its lane is left behind once its deliveries are closed.
    assert await redis.keys(f"relay:lane:{sub['id']}*") == []
    assert not await redis.sismember("relay:lanes", sub["id"])


async def test_deleting_an_idle_subscription_leaves_no_lane_state(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver, redis: aioredis.Redis
) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    await ingest(api)
    await run_worker()
    receiver.wait_for(1)
    assert await redis.exists(f"relay:lane:{sub['id']}:state")  # its job counter
    assert (await api.delete(f"/api/subscriptions/{sub['id']}", headers=AUTH)).status_code == 204
    assert await redis.keys(f"relay:lane:{sub['id']}*") == []


async def test_a_test_event_goes_out_while_paused(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    await api.post(f"/api/subscriptions/{sub['id']}/pause", headers=AUTH)
    r = await api.post(f"/api/subscriptions/{sub['id']}/test", headers=AUTH)
    assert r.json()["status"] == "succeeded"
    assert len(receiver.wait_for(1)) == 1


async def test_replay_before_fan_out_is_refused(
    api: httpx.AsyncClient, store: Store, settings
) -> None:
    from relay.delivery.ingest import Ingestor

    await create_source(api)
    await create_subscription(api, "http://x.test/")  # so the event waits for its fan-out
    outcome = await Ingestor(store, settings).ingest("github", {}, b"{}", "application/json")
    event_id = outcome.result.event_id  # type: ignore[union-attr]
    r = await api.post(f"/api/events/{event_id}/replay", json={}, headers=AUTH)
    assert r.status_code == 409


async def test_concurrent_edits_and_rotations_lose_nothing(api: httpx.AsyncClient) -> None:
    await create_source(api)
    sub = await create_subscription(api, "http://x.test/")
    path = f"/api/subscriptions/{sub['id']}"
    rotations = [api.post(f"{path}/rotate-secret", headers=AUTH) for _ in range(5)]
    edits = [
        api.patch(path, json={"description": f"d{i}", "timeout_s": i + 1}, headers=AUTH)
        for i in range(5)
    ]
    answers = await asyncio.gather(*rotations, *edits)
    assert all(a.status_code == 200 for a in answers)
    # Every rotation answered a secret; the stored one is one of them (the last to commit),
    # and its predecessor is another: no rotation was silently overwritten by an edit.
    secrets_given = {a.json()["secret"] for a in answers[:5]}
    assert len(secrets_given) == 5
    got = (await api.get(path, headers=AUTH)).json()
    assert got["description"] in {f"d{i}" for i in range(5)}
    assert got["timeout_s"] == int(got["description"][1:]) + 1  # from the same edit


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/events"),
        ("GET", "/api/deliveries"),
        ("GET", "/api/dead-letters"),
        ("DELETE", "/api/dead-letters"),
    ],
)
async def test_times_before_1970_mean_1970_and_bare_numbers_are_422(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    """The document says date-time: any, 0001 included (nothing is older than 1970); a
    number is not one, though pydantic would read "0.5" as seconds since 1970."""
    await create_source(api)
    await ingest(api)
    r = await api.request(method, path, params={"since": "0001-01-01T00:00:00"}, headers=AUTH)
    assert r.status_code == 200, r.text
    if method == "GET" and path == "/api/events":
        assert len(r.json()["data"]) == 1
        r = await api.get(path, params={"until": "1969-12-31T23:59:59Z"}, headers=AUTH)
        assert r.json()["data"] == []
    for number in ("0.5", "1700000000", "-1", "7"):
        r = await api.request(method, path, params={"until": number}, headers=AUTH)
        assert r.status_code == 422, (number, r.text)
        assert "RFC 3339" in r.text
    for number in ("0.5", 0, 1.5):
        r = await api.post("/api/dead-letters/replay", json={"since": number}, headers=AUTH)
        assert r.status_code == 422, number


async def test_naive_since_means_utc(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server in New York must still read a zone-less time as UTC.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        await create_source(api)
        event_id = await ingest(api)
        now_utc = datetime.now(UTC).replace(tzinfo=None)
        minute = timedelta(minutes=1)
        ahead = await get(api, "/api/events", since=(now_utc + minute).isoformat())
        behind = await get(api, "/api/events", since=(now_utc - minute).isoformat())
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert ahead["data"] == []
    assert [e["id"] for e in behind["data"]] == [event_id]


async def test_bulk_replay_walks_past_deliveries_that_die_again(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    # Every attempt gets a 400: a replayed delivery is dead again at once, back in the index.
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    receiver.default = Reply(status=400)
    for _ in range(3):
        await ingest(api)
    await run_worker()
    after, replies = None, []
    while True:
        body = {"subscription_id": sub["id"], "limit": 1, "after": after}
        answer = (await api.post("/api/dead-letters/replay", json=body, headers=AUTH)).json()
        replies.append(answer["requeued"])
        await run_worker()  # it dies again before the next call
        if answer["last"] is None:
            break
        after = answer["last"]
    assert replies == [1, 1, 1, 0]
    dead = await get(api, "/api/dead-letters", subscription_id=sub["id"])
    assert sorted(d["attempts"] for d in dead["data"]) == [2, 2, 2]  # each replayed once


async def test_a_failed_test_event_is_not_a_dead_letter(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    receiver.script(500)
    r = await api.post(f"/api/subscriptions/{sub['id']}/test", headers=AUTH)
    assert r.json()["status"] == "dead"
    assert (await get(api, "/api/dead-letters"))["total"] == 0
