"""A subscription stored in a form this version cannot use costs its own deliveries only.

The poison records are written straight into Redis, as an older or buggy version did: the
healthy subscription on the same source must receive every event, the poison one must be
reported and stay readable, listable and deletable over the API.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from relay.devtools.receiver import Receiver
from relay.storage.keys import Keys
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription, get, ingest

POISON_ID = "sub_01POISON0000000000000000"


def record(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "id": POISON_ID, "url": "http://127.0.0.1:9/hook", "sources": ["github"],
        "event_types": ["*"], "mode": "reliable", "description": "old", "headers": {},
        "secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "created_at": 1, "updated_at": 1,
    }  # fmt: skip
    return orjson.dumps({**base, **fields})


POISONS = {
    # What the bug of issue 10 stored: under 2,083 characters as sent, 4,200 normalised.
    "url_too_long": record(url="http://127.0.0.1:9/?token=s3cr3t#" + "%C3%A9" * 700),
    "wrong_types": record(retry={"max_attempts": "lots"}, headers=["X-Auth"]),
    "not_json": b'{"id": "sub_01POISON',
}


async def store_poison(redis: aioredis.Redis, config: bytes, sub_id: str = POISON_ID) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(Keys.sub(sub_id), mapping={"config": config, "enabled": "1"})
        pipe.sadd(Keys.subs, sub_id)
        pipe.sadd(Keys.subs_for("github"), sub_id)
        pipe.incr(Keys.subs_rev)
        await pipe.execute()


@pytest.mark.parametrize("poison", sorted(POISONS))
async def test_a_poison_subscription_costs_only_its_own_deliveries(
    api: httpx.AsyncClient,
    redis: aioredis.Redis,
    run_worker: WorkerRun,
    receiver: Receiver,
    poison: str,
) -> None:
    await create_source(api)
    healthy = await create_subscription(api, receiver.url)
    await store_poison(redis, POISONS[poison])

    with capture_logs() as logs:
        events = [await ingest(api) for _ in range(5)]
        await run_worker()
    assert len(receiver.wait_for(5)) == 5
    for event_id in events:
        detail = await get(api, f"/api/events/{event_id}")
        assert [d["subscription_id"] for d in detail["deliveries"]] == [healthy["id"]]
        assert detail["deliveries"][0]["status"] == "succeeded"
    # Once per read of the subscriptions, in each process that reads them (API, worker).
    reported = [e for e in logs if e["event"] == "fanout.subscription_unusable"]
    assert 1 <= len(reported) <= 4
    assert all((e["subscription_id"], e["log_level"]) == (POISON_ID, "error") for e in reported)
    completed = [e for e in logs if e["event"] == "fanout.completed"]
    assert len(completed) == 5
    assert all(e["unusable"] == [POISON_ID] for e in completed)

    listed = (await get(api, "/api/subscriptions"))["data"]
    assert sorted(s["id"] for s in listed) == sorted([healthy["id"], POISON_ID])
    shown = await get(api, f"/api/subscriptions/{POISON_ID}")
    assert shown["problem"]
    assert "s3cr3t" not in str(listed) + str(shown)
    assert "whsec_" not in str(listed) + str(shown)
    r = await api.post(f"/api/subscriptions/{POISON_ID}/pause", headers=AUTH)
    assert (r.status_code, r.json()["paused"]) == (200, True)
    r = await api.patch(f"/api/subscriptions/{POISON_ID}", json={"enabled": True}, headers=AUTH)
    assert r.status_code == 409
    assert "delete it" in r.json()["detail"]
    r = await api.post(
        f"/api/events/{events[0]}/replay", json={"subscription_ids": [POISON_ID]}, headers=AUTH
    )
    assert r.status_code == 409

    r = await api.delete(f"/api/subscriptions/{POISON_ID}", headers=AUTH)
    assert r.status_code == 204
    assert [s["id"] for s in (await get(api, "/api/subscriptions"))["data"]] == [healthy["id"]]
    assert not await redis.sismember(Keys.subs_for("github"), POISON_ID)
    assert not await redis.exists(Keys.sub(POISON_ID))


async def test_deliveries_waiting_for_a_subscription_that_turns_poison_die_with_the_reason(
    api: httpx.AsyncClient, redis: aioredis.Redis, run_worker: WorkerRun, receiver: Receiver
) -> None:
    """A delivery fanned out before its subscription became unusable (an upgrade, a hand
    edit) is closed with the problem, so its dead letter says what to repair."""
    await create_source(api)
    healthy = await create_subscription(api, receiver.url)
    doomed = await create_subscription(api, receiver.url + "?doomed=1")
    event_id = await ingest(api)
    await redis.hset(Keys.sub(doomed["id"]), "config", POISONS["not_json"])
    await run_worker()
    assert len(receiver.wait_for(1)) == 1
    deliveries = {d["subscription_id"]: d for d in (await get(api, f"/api/events/{event_id}"))[
        "deliveries"]}  # fmt: skip
    assert deliveries[healthy["id"]]["status"] == "succeeded"
    dead = deliveries[doomed["id"]]
    assert (dead["status"], dead["last_error"]) == ("dead", "UnusableSubscription")
    attempt = (await get(api, f"/api/deliveries/{dead['id']}"))["attempt_log"][0]
    assert attempt["error_message"] == "the stored record is not JSON"


async def test_a_subscription_written_under_older_rules_keeps_working(
    api: httpx.AsyncClient, redis: aioredis.Redis, run_worker: WorkerRun, receiver: Receiver
) -> None:
    """Rules tightened for input (no zero waits, no 5e-324 timeouts) do not turn records
    written before them into unusable ones."""
    await create_source(api)
    await store_poison(redis, record(url=receiver.url, timeout_s=0.01, retry={"initial_s": 0}))
    shown = await get(api, f"/api/subscriptions/{POISON_ID}")
    assert "problem" not in shown
    assert (shown["timeout_s"], shown["retry"]["initial_s"]) == (0.01, 0)
    r = await api.patch(
        f"/api/subscriptions/{POISON_ID}", json={"description": "edited"}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    event_id = await ingest(api)
    await run_worker()
    # Delivered (a 10 ms timeout on a busy machine may take a retry or two: same webhook).
    assert {r.headers["webhook-id"] for r in receiver.wait_for(1)} == {event_id}
