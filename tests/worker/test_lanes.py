"""The lane engine end to end: real API, real worker, real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import redis.asyncio as aioredis
from arq.constants import in_progress_key_prefix

from config.settings import RetrySettings, Settings
from relay.delivery import queue
from relay.devtools.receiver import Received, Receiver, Reply
from relay.domain.clock import now_ms
from relay.storage.keys import Keys
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription, event_count
from workers.main import build_worker


async def post(api: httpx.AsyncClient, payload: dict[str, object]) -> str:
    r = await api.post(
        "/ingest/github",
        content=json.dumps(payload).encode(),
        headers={"X-GitHub-Event": "push", "content-type": "application/json"},
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


async def test_fifo_delivers_in_order_per_key_through_failures(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url, ordering={"mode": "fifo", "key": "$.repo"})
    # Every fifth request fails: its delivery waits for a retry and holds its key back.
    receiver.script(*([200, 200, 200, 200, 503] * 8))
    sent = [await post(api, {"repo": f"r{i % 3}", "seq": i}) for i in range(15)]

    await run_worker()

    got = receiver.wait_for(15 + 3)
    assert len({r.headers["webhook-id"] for r in got}) == len(sent)
    for repo in ("r0", "r1", "r2"):
        seqs = [json.loads(r.body)["seq"] for r in got if json.loads(r.body)["repo"] == repo]
        # In order, a failed one repeated before the next: never a later one first.
        assert seqs == sorted(seqs), (repo, seqs)
        assert sorted(set(seqs)) == [i for i in range(15) if f"r{i % 3}" == repo]


async def test_a_dead_delivery_lets_its_key_move_on(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url, ordering={"mode": "fifo"})
    receiver.script(422)  # the first one is refused for good
    for i in range(3):
        await post(api, {"seq": i})
    await run_worker()
    seqs = [json.loads(r.body)["seq"] for r in receiver.wait_for(3)]
    assert seqs == [0, 1, 2]


async def test_a_429_with_retry_after_holds_the_whole_lane(
    api: httpx.AsyncClient, make_settings, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url, max_concurrency=1)
    receiver.script(Reply(status=429, headers={"Retry-After": "1"}))
    for i in range(3):
        await post(api, {"seq": i})
    # The test schedule caps every wait at 0.2 s; Retry-After is honoured up to that cap.
    await run_worker(make_settings(retry=RetrySettings(max_wait_s=5, initial_s=0.05, jitter_s=0)))
    first, *rest = receiver.wait_for(4)
    assert json.loads(first.body)["seq"] == 0
    # Not only the delivery that got the 429 waited: nothing went to the receiver meanwhile.
    assert all(r.at - first.at >= 0.9 for r in rest)


async def test_the_rate_limit_spaces_deliveries(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url, rate_limit=20)
    for i in range(12):
        await post(api, {"seq": i})
    await run_worker()
    got = receiver.wait_for(12)
    # 20/s with a tenth of a second's burst: 12 deliveries take at least half a second.
    assert got[-1].at - got[0].at >= 0.45


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_concurrency", 0),
        ("rate_limit", -1),
        ("ordering", {"mode": "lifo"}),
        ("ordering", {"mode": "fifo", "key": "repo"}),
        ("ordering", {"mode": "fifo", "key": "$.a[x]"}),
        ("ordering", {"mode": "fifo", "key": "header:"}),
    ],
)
async def test_bad_lane_settings_are_422(api: httpx.AsyncClient, field: str, value: object) -> None:
    body = {"url": "https://example.com/h", "sources": ["*"], field: value}
    r = await api.post("/api/subscriptions", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await event_count(api) == 0


async def test_lane_settings_are_shown_and_patched(api: httpx.AsyncClient) -> None:
    await create_source(api)
    sub = await create_subscription(
        api, "https://example.com/h", max_concurrency=4, rate_limit=2.5,
        ordering={"mode": "fifo", "key": "header:X-GitHub-Event"},
    )  # fmt: skip
    assert sub["max_concurrency"] == 4
    assert sub["rate_limit"] == 2.5
    assert sub["ordering"] == {"mode": "fifo", "key": "header:x-github-event"}
    r = await api.patch(
        f"/api/subscriptions/{sub['id']}",
        json={"rate_limit": None, "ordering": {"mode": "none"}},
        headers=AUTH,
    )
    assert r.status_code == 200
    assert r.json()["rate_limit"] is None
    assert r.json()["ordering"] == {"mode": "none", "key": None}
    assert r.json()["max_concurrency"] == 4


async def test_a_header_ordering_key_must_be_a_stored_header(api: httpx.AsyncClient) -> None:
    body = {
        "url": "https://example.com/h",
        "sources": ["*"],
        "ordering": {"mode": "fifo", "key": "header:X-Not-Stored"},
    }
    r = await api.post("/api/subscriptions", json=body, headers=AUTH)
    assert r.status_code == 422
    assert "RELAY_STORED_HEADERS" in r.json()["detail"]


def most_at_once(got: list[Received], took_s: float) -> int:
    """The most requests the receiver was answering at one time (each is stamped as it is
    answered, ``took_s`` after it arrived)."""
    ends = sorted(r.at for r in got)
    return max(sum(1 for e in ends if end - took_s < e <= end) for end in ends)


@pytest.mark.parametrize(("peer", "expected"), [(False, 4), (True, 2)])
async def test_beside_another_live_worker_a_worker_takes_its_share_of_the_lanes(
    api: httpx.AsyncClient,
    run_worker: WorkerRun,
    redis: aioredis.Redis,
    peer: bool,
    expected: int,
) -> None:
    """Four busy lanes, one delivery at a time each: alone, a worker runs all four at once;
    with another live worker (a heartbeat that takes no jobs here), it runs two at a time,
    leaving the rest for the other, and still delivers everything once its own are done."""
    receiver = Receiver()
    receiver.default = Reply(delay_s=0.3)
    try:
        await create_source(api)
        for _ in range(4):
            await create_subscription(api, receiver.url, max_concurrency=1)
        await post(api, {"n": 1})
        if peer:
            await redis.zadd(Keys.picking_workers, {"peer:1:abc": now_ms() + 60_000})
        await run_worker()
        got = receiver.wait_for(4)
    finally:
        receiver.close()
        await redis.zrem(Keys.picking_workers, "peer:1:abc")
    assert len({r.headers["webhook-signature"] for r in got}) == 4  # one per subscription
    assert most_at_once(got, 0.3) == expected


async def test_a_job_stuck_at_the_head_of_the_queue_does_not_hide_a_lane_behind_it(
    api: httpx.AsyncClient, settings: Settings, redis: aioredis.Redis, receiver: Receiver
) -> None:
    """Beside a live peer, with one busy lane, this worker's share is one lane job: it must
    still look past a job whose worker died while running it (in progress for a minute
    more, due at the head of the queue) and start the lane's job behind it."""
    await create_source(api)
    await create_subscription(api, receiver.url)
    await post(api, {"n": 1})
    await redis.zadd(Keys.picking_workers, {"peer:1:abc": now_ms() + 60_000})
    await redis.zadd(settings.queue_name, {"recover:dead-worker": 1})
    await redis.set(f"{in_progress_key_prefix}recover:dead-worker", b"1", px=60_000)
    worker = build_worker(settings, queue.connect(settings), burst=True, handle_signals=False)
    running = asyncio.create_task(worker.main())
    try:
        got = await asyncio.to_thread(receiver.wait_for, 1, 5.0)
        assert len(got) == 1
    finally:
        # The stuck job never finishes here: take it away so the burst worker can end.
        await redis.zrem(settings.queue_name, "recover:dead-worker")
        await redis.zrem(Keys.picking_workers, "peer:1:abc")
        await asyncio.wait_for(running, 10)
        await worker.close()
