"""Ingest to delivery through the real app, real worker, real Redis and real receivers."""

from __future__ import annotations

import asyncio
import time

import httpx
import redis.asyncio as aioredis

from config.settings import RetrySettings
from relay.devtools.receiver import Receiver, Reply
from relay.domain.clock import now_ms
from relay.storage import Store
from relay.storage.keys import Keys
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription, ms_of

PUSH = {"X-GitHub-Event": "push", "content-type": "application/json"}


async def dead_letter_ids(api: httpx.AsyncClient) -> set[str]:
    r = await api.get("/api/dead-letters", params={"limit": 500}, headers=AUTH)
    return {d["id"] for d in r.json()["data"]}


async def post_event(
    api: httpx.AsyncClient, body: bytes = b'{"ref":"main"}', **headers: str
) -> str:
    r = await api.post("/ingest/github", content=body, headers={**PUSH, **headers})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    event_id: str = r.json()["event_id"]
    return event_id


async def deliveries_of(api: httpx.AsyncClient, event_id: str) -> list[dict[str, object]]:
    r = await api.get(f"/api/events/{event_id}", headers=AUTH)
    assert r.status_code == 200
    deliveries: list[dict[str, object]] = r.json()["deliveries"]
    return deliveries


async def attempts_of(api: httpx.AsyncClient, delivery_id: object) -> list[dict[str, object]]:
    r = await api.get(f"/api/deliveries/{delivery_id}", headers=AUTH)
    assert r.status_code == 200
    log: list[dict[str, object]] = r.json()["attempt_log"]
    return log


async def test_event_reaches_subscriber_with_relay_headers(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url, headers={"X-Team": "payments"})
    body = b'{"ref":"refs/heads/main","weird":"\xc3\xa9"}'
    event_id = await post_event(api, body)

    await run_worker()

    [got] = receiver.wait_for(1)
    assert got.body == body  # raw bytes, never re-serialised
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == event_id
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 30
    assert got.headers["x-relay-source"] == "github"
    assert got.headers["x-relay-event-type"] == "push"
    assert got.headers["x-relay-attempt"] == "1"
    assert got.headers["x-team"] == "payments"

    [delivery] = await deliveries_of(api, event_id)
    assert delivery["status"] == "succeeded"
    assert delivery["subscription_id"] == sub["id"]
    assert delivery["attempts"] == 1
    [attempt] = await attempts_of(api, delivery["id"])
    assert attempt["status_code"] == 200
    assert attempt["response_excerpt"] == "ok"
    assert attempt["outcome"] == "succeeded"
    assert attempt["trigger"] == "scheduled"


async def test_retry_then_success_records_every_attempt(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.script(503, Reply(status=500, body=b"boom"), 200)
    event_id = await post_event(api)

    await run_worker()

    got = receiver.wait_for(3)
    assert [r.headers["x-relay-attempt"] for r in got] == ["1", "2", "3"]
    assert {r.headers["webhook-id"] for r in got} == {event_id}
    [delivery] = await deliveries_of(api, event_id)
    assert delivery["status"] == "succeeded"
    attempts = await attempts_of(api, delivery["id"])
    assert [a["status_code"] for a in attempts] == [503, 500, 200]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[1]["response_excerpt"] == "boom"
    assert attempts[0]["next_attempt_at"] is not None
    assert attempts[2]["next_attempt_at"] is None


async def test_long_wait_becomes_a_deferred_job(
    make_settings, api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    # Waits above inline_retry_max_s leave the job and come back as `<delivery>:<n+1>`.
    settings = make_settings(inline_retry_max_s=0, retry=RetrySettings(initial_s=0.3, jitter_s=0))
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.script(502, 200)
    await post_event(api)

    await run_worker(settings)

    first, second = receiver.wait_for(2)
    assert second.at - first.at >= 0.25


async def test_permanent_client_error_gives_up_at_once(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver, store: Store
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.script(Reply(status=422, body=b"bad payload"))
    event_id = await post_event(api)

    await run_worker()

    assert len(receiver.wait_for(1)) == 1
    [delivery] = await deliveries_of(api, event_id)
    assert delivery["status"] == "dead"
    assert delivery["last_status_code"] == 422
    assert delivery["id"] in await dead_letter_ids(api)
    depth = await store.housekeeping.queue_depth(now_ms())
    assert (depth.due, depth.scheduled, depth.dead) == (0, 0, 1)


async def test_gone_disables_the_subscription(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    receiver.script(410)
    first = await post_event(api)
    await run_worker()

    [delivery] = await deliveries_of(api, first)
    assert delivery["status"] == "dead"
    r = await api.get(f"/api/subscriptions/{sub['id']}", headers=AUTH)
    assert r.json()["enabled"] is False
    assert "410" in r.json()["disabled_reason"]

    # A disabled subscription is not fanned out to; re-enabling brings it back.
    second = await post_event(api)
    assert await deliveries_of(api, second) == []
    r = await api.patch(f"/api/subscriptions/{sub['id']}", json={"enabled": True}, headers=AUTH)
    assert r.json()["enabled"] is True
    assert r.json()["disabled_reason"] is None
    await post_event(api)
    await run_worker()
    assert len(receiver.wait_for(2)) == 2


async def test_exhausted_retries_go_dead(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    receiver.default = Reply(status=500)
    await create_source(api)
    await create_subscription(api, receiver.url)
    event_id = await post_event(api)

    await run_worker()

    assert len(receiver.wait_for(4)) == 4  # max_attempts in the test settings
    [delivery] = await deliveries_of(api, event_id)
    assert delivery["status"] == "dead"
    assert delivery["attempts"] == 4
    attempts = await attempts_of(api, delivery["id"])
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "failed", "dead"]
    assert delivery["id"] in await dead_letter_ids(api)
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 4


async def test_connection_refused_is_retried(api: httpx.AsyncClient, run_worker: WorkerRun) -> None:
    await create_source(api)
    # Nothing listens on port 9 of loopback here.
    await create_subscription(api, "http://127.0.0.1:9/hook")
    event_id = await post_event(api)
    await run_worker()
    [delivery] = await deliveries_of(api, event_id)
    assert delivery["status"] == "dead"
    attempts = await attempts_of(api, delivery["id"])
    assert len(attempts) == 4
    assert attempts[0]["status_code"] is None
    assert attempts[0]["error"] == "ConnectError"


async def test_retry_after_is_honoured(
    make_settings, api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    settings = make_settings(retry=RetrySettings(initial_s=0.01, max_wait_s=5, jitter_s=0))
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.script(Reply(status=429, headers={"Retry-After": "1"}), 200)
    event_id = await post_event(api)

    await run_worker(settings)

    first, second = receiver.wait_for(2)
    assert second.at - first.at >= 0.95
    [delivery] = await deliveries_of(api, event_id)
    attempts = await attempts_of(api, delivery["id"])
    assert attempts[0]["status_code"] == 429
    waited = ms_of(attempts[0]["next_attempt_at"]) - ms_of(attempts[0]["started_at"])
    assert 950 <= waited <= 3000


async def test_retry_after_is_capped_by_the_policy(
    make_settings, api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    settings = make_settings(retry=RetrySettings(initial_s=0.01, max_wait_s=0.3, jitter_s=0))
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.script(Reply(status=503, headers={"Retry-After": "3600"}), 200)
    await post_event(api)
    started = time.monotonic()
    await run_worker(settings)
    assert len(receiver.wait_for(2)) == 2
    assert time.monotonic() - started < 5


async def test_event_type_globs_choose_subscribers(
    api: httpx.AsyncClient, run_worker: WorkerRun
) -> None:
    prs, everything = Receiver(), Receiver()
    try:
        await create_source(api)
        await create_subscription(api, prs.url, event_types=["pull_request.*", "issues"])
        await create_subscription(api, everything.url)
        await post_event(api, **{"X-GitHub-Event": "pull_request.opened"})
        push = await post_event(api)
        await run_worker()
        assert [r.headers["x-relay-event-type"] for r in prs.wait_for(1)] == ["pull_request.opened"]
        assert len(everything.wait_for(2)) == 2
        assert len(await deliveries_of(api, push)) == 1
    finally:
        prs.close()
        everything.close()


async def test_best_effort_is_one_attempt_from_the_api(
    api: httpx.AsyncClient, receiver: Receiver, redis: aioredis.Redis
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url, mode="best_effort")
    ok = await post_event(api)
    # No worker runs here: the API's background task made the attempt.
    [got] = receiver.wait_for(1)
    assert got.headers["webhook-id"] == ok
    [delivery] = await deliveries_of(api, ok)
    assert delivery["status"] == "succeeded"

    receiver.script(500)
    failed = await post_event(api)
    [delivery] = await deliveries_of(api, failed)
    assert delivery["status"] == "dead"
    assert delivery["attempts"] == 1
    assert await redis.zcard("relay:test-queue") == 0  # nothing was queued for a retry


async def test_best_effort_subscribers_of_one_event_are_attempted_side_by_side(
    api: httpx.AsyncClient,
) -> None:
    slow, fast = Receiver(), Receiver()
    slow.default = Reply(delay_s=1.0)
    try:
        await create_source(api)
        # Subscriptions are planned in creation order: the slow one first.
        await create_subscription(api, slow.url, mode="best_effort")
        await create_subscription(api, fast.url, mode="best_effort")
        await post_event(api)
        [got_slow] = slow.wait_for(1)
        [got_fast] = fast.wait_for(1)
    finally:
        slow.close()
        fast.close()
    # Each receiver stamps a request as it answers: the fast one did not wait for the slow.
    assert got_fast.at < got_slow.at - 0.5


async def test_one_slow_subscriber_does_not_hold_up_the_others(
    make_settings, api: httpx.AsyncClient, run_worker: WorkerRun
) -> None:
    slow, fast = Receiver(), Receiver()
    slow.default = Reply(delay_s=0.4)
    try:
        await create_source(api)
        await create_subscription(api, slow.url)
        await create_subscription(api, fast.url)
        for _ in range(5):
            await post_event(api)
        await run_worker(make_settings(max_concurrency_per_subscription=2))
        got_slow = slow.wait_for(5)
        got_fast = fast.wait_for(5)
    finally:
        slow.close()
        fast.close()
    # The slow receiver (0.4 s per answer, stamped when it answers) never had more than two
    # requests in flight at once.
    ends = sorted(r.at for r in got_slow)
    overlaps = [sum(1 for e in ends if end - 0.4 < e <= end) for end in ends]
    assert max(overlaps) <= 2
    # The fast subscriber, at the same cap, was not queued behind the slow one: all of its
    # deliveries were in before the slow one had answered its third (0.8 s in, at best).
    assert max(r.at for r in got_fast) < ends[2]


async def test_a_subscriptions_own_retry_policy_wins(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    receiver.default = Reply(status=503)
    await create_source(api)
    await create_subscription(api, receiver.url, retry={"max_attempts": 2})
    event_id = await post_event(api)
    await run_worker()
    [delivery] = await deliveries_of(api, event_id)
    assert delivery["status"] == "dead"
    assert delivery["attempts"] == 2  # not the relay-wide 4 of the test settings


async def test_a_subscription_failing_for_too_long_is_disabled(
    make_settings, api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    # Failing for at least 0.3 s (every attempt; retries 0.05, 0.1, 0.2 s apart) disables
    # it; a success in between resets.
    settings = make_settings(disable_after_failing_s=0.3)
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    receiver.script(500, 200)  # fails once, then recovers: the clock resets
    await post_event(api)
    await run_worker(settings)
    assert (await api.get(f"/api/subscriptions/{sub['id']}", headers=AUTH)).json()["enabled"]

    receiver.default = Reply(status=500)
    event_id = await post_event(api)
    await run_worker(settings)
    got = (await api.get(f"/api/subscriptions/{sub['id']}", headers=AUTH)).json()
    assert got["enabled"] is False
    assert got["disabled_reason"] == "every attempt failed for 0.3 s"
    [delivery] = await deliveries_of(api, event_id)
    assert delivery["status"] == "dead"
    # Re-enabled by an operator, it starts with a clean record and delivers again.
    receiver.default = Reply(status=200)
    r = await api.patch(f"/api/subscriptions/{sub['id']}", json={"enabled": True}, headers=AUTH)
    assert r.json()["enabled"] is True
    before = len(receiver.requests)
    await post_event(api)
    await run_worker(settings)
    assert len(receiver.requests) == before + 1
    assert (await api.get(f"/api/subscriptions/{sub['id']}", headers=AUTH)).json()["enabled"]


async def test_a_quiet_gap_restarts_the_failing_clock(
    make_settings, api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver, redis
) -> None:

    # 1 s: the failing clock lives that long after an attempt, and the test reads it after
    # the second run, which on a busy machine can take a good part of a second.
    settings = make_settings(disable_after_failing_s=1.0)
    receiver.default = Reply(status=400)  # each event fails once and is dead
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    await post_event(api)
    await run_worker(settings)
    await asyncio.sleep(1.05)  # longer than the limit, with no attempts at all
    await post_event(api)
    await run_worker(settings)
    assert (await api.get(f"/api/subscriptions/{sub['id']}", headers=AUTH)).json()["enabled"]
    # A new URL is a new subscriber: its record starts clean.
    assert await redis.get(Keys.sub_failing(sub["id"])) is not None
    await api.patch(
        f"/api/subscriptions/{sub['id']}", json={"url": receiver.url + "2"}, headers=AUTH
    )
    assert await redis.get(Keys.sub_failing(sub["id"])) is None


async def test_the_relays_own_refusals_do_not_count_as_the_subscriber_failing(
    make_settings, run_worker: WorkerRun, receiver: Receiver
) -> None:
    from relay.api.app import create_app
    from tests.conftest import rebinding_dns, running_app

    # Loopback is refused (production default) and the limit is tiny.
    settings = make_settings(allowed_private_networks=(), disable_after_failing_s=0.01)
    app = create_app(settings)
    async with running_app(app) as api:
        rebinding_dns(app)
        await create_source(api)
        sub = await create_subscription(api, receiver.url.replace("127.0.0.1", "localhost"))
        for _ in range(3):
            await post_event(api)
            await run_worker(settings)
            await asyncio.sleep(0.02)
        got = (await api.get(f"/api/subscriptions/{sub['id']}", headers=AUTH)).json()
    assert receiver.requests == []
    assert got["enabled"] is True
