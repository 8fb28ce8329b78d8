"""Operational events end to end: an operator's endpoint (a real receiver subscribed to
``_relay.ops``) gets signed events when a subscription is disabled, a delivery dies, and a
backlog or dead letters cross a threshold and recover."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
from standardwebhooks import Webhook

from config.settings import Settings
from relay.devtools.receiver import Receiver, Reply
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription, get, ingest


async def ops_endpoint(api: httpx.AsyncClient, receiver: Receiver) -> Webhook:
    """Subscribe ``receiver`` to operational events; a verifier with its secret."""
    created = await create_subscription(api, receiver.url, sources=["_relay.ops"])
    return Webhook(created["secret"])


def ops_events(receiver: Receiver, verifier: Webhook) -> list[dict[str, Any]]:
    """What the operator's endpoint got, each signature checked."""
    got = []
    for request in receiver.requests:
        payload = verifier.verify(request.body, request.headers)
        assert request.headers["x-relay-source"] == "_relay.ops"
        assert request.headers["x-relay-event-type"] == payload["type"]
        got.append(payload)
    return got


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == event_type]


async def test_a_410_reports_the_delivery_dead_and_the_subscription_disabled(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    operator, everything = Receiver(), Receiver()
    try:
        verifier = await ops_endpoint(api, operator)
        await create_source(api)
        sub = await create_subscription(api, receiver.url)
        # "*" takes every source's events, but not the relay's own.
        await create_subscription(api, everything.url, sources=["*"])
        receiver.script(410)
        event_id = await ingest(api)
        await run_worker()
        events = ops_events(operator, verifier)
    finally:
        operator.close()
        everything.close()

    assert sorted(e["type"] for e in events) == ["delivery.dead", "subscription.disabled"]
    [dead] = of_type(events, "delivery.dead")
    deliveries = (await get(api, f"/api/events/{event_id}"))["deliveries"]
    [delivery] = [d for d in deliveries if d["subscription_id"] == sub["id"]]
    assert dead["subscription_id"] == sub["id"]
    assert dead["event_id"] == event_id
    assert dead["delivery_id"] == delivery["id"]
    assert dead["last_status_code"] == 410
    assert dead["attempts"] == 1
    [disabled] = of_type(events, "subscription.disabled")
    assert disabled["subscription_id"] == sub["id"]
    assert disabled["reason"] == "410 Gone from the receiver"
    assert disabled["delivery_id"] == delivery["id"]
    assert [json.loads(r.body) for r in everything.requests] == [{}]  # the github event only
    listed = await get(api, "/api/events", source="_relay.ops")
    assert len(listed["data"]) == 2


async def test_a_delivery_that_runs_out_of_retries_is_reported_once(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    operator = Receiver()
    try:
        verifier = await ops_endpoint(api, operator)
        await create_source(api)
        receiver.default = Reply(status=503)
        sub = await create_subscription(api, receiver.url)
        event_id = await ingest(api)
        await run_worker()
        events = ops_events(operator, verifier)
    finally:
        operator.close()

    [dead] = of_type(events, "delivery.dead")
    assert dead["subscription_id"] == sub["id"]
    assert dead["event_id"] == event_id
    assert (dead["attempts"], dead["last_status_code"]) == (4, 503)  # the test schedule's 4
    assert len(events) == 1
    # ISO 8601 in UTC, to the millisecond, as Svix's operational webhooks carry it.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", events[0]["timestamp"])


async def test_a_subscription_failing_for_too_long_is_reported_disabled(
    api: httpx.AsyncClient,
    make_settings: Callable[..., Settings],
    run_worker: WorkerRun,
    receiver: Receiver,
) -> None:
    operator = Receiver()
    try:
        verifier = await ops_endpoint(api, operator)
        await create_source(api)
        receiver.default = Reply(status=500)
        sub = await create_subscription(api, receiver.url)
        await ingest(api)
        # Retries 0.05, 0.1, 0.2 s apart: the fourth attempt has failed for 0.35 s.
        await run_worker(make_settings(disable_after_failing_s=0.3))
        events = ops_events(operator, verifier)
    finally:
        operator.close()

    [disabled] = of_type(events, "subscription.disabled")
    assert disabled["subscription_id"] == sub["id"]
    assert disabled["reason"] == "every attempt failed for 0.3 s"


async def test_an_operational_delivery_that_dies_reports_nothing_about_itself(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    operator = Receiver()
    operator.default = Reply(status=410)  # dies and disables the operator's subscription
    try:
        await ops_endpoint(api, operator)
        await create_source(api)
        receiver.script(422)
        await create_subscription(api, receiver.url)
        await ingest(api)
        await run_worker()
        assert len(operator.requests) == 1
    finally:
        operator.close()

    listed = await get(api, "/api/events", source="_relay.ops")
    assert [e["event_type"] for e in listed["data"]] == ["delivery.dead"]
    dead_ops = await get(api, "/api/dead-letters")
    # Its own death is a dead letter like any other, for a replay once it is fixed.
    assert dead_ops["total"] == 2


async def test_a_backlog_crossing_its_threshold_is_reported_once_and_its_recovery_too(
    api: httpx.AsyncClient,
    make_settings: Callable[..., Settings],
    run_worker: WorkerRun,
    receiver: Receiver,
) -> None:
    settings = make_settings(ops_backlog_threshold=3)
    operator = Receiver()
    try:
        verifier = await ops_endpoint(api, operator)
        await create_source(api)
        sub = await create_subscription(api, receiver.url)
        r = await api.post(f"/api/subscriptions/{sub['id']}/pause", headers=AUTH)
        assert r.status_code == 200, r.text
        for _ in range(4):
            await ingest(api)
        await run_worker(settings)  # the recovery pass at start: 4 waiting >= 3
        await run_worker(settings)  # still 4: nothing new
        exceeded = of_type(ops_events(operator, verifier), "subscription.backlog_exceeded")
        assert exceeded == [{"subscription_id": sub["id"], "backlog": 4, "threshold": 3}]

        r = await api.post(f"/api/subscriptions/{sub['id']}/resume", headers=AUTH)
        assert r.status_code == 200, r.text
        await run_worker(settings)  # drains; its start saw the backlog still there
        await run_worker(settings)  # 0 <= 1: recovered
        events = ops_events(operator, verifier)
    finally:
        operator.close()

    assert len(receiver.requests) == 4
    assert [e["type"] for e in events] == [
        "subscription.backlog_exceeded",
        "subscription.backlog_recovered",
    ]
    assert events[1]["data"] == {"subscription_id": sub["id"], "backlog": 0, "threshold": 3}


async def test_dead_letters_crossing_their_threshold_are_reported_until_purged(
    api: httpx.AsyncClient,
    make_settings: Callable[..., Settings],
    run_worker: WorkerRun,
    receiver: Receiver,
) -> None:
    settings = make_settings(ops_dead_letter_threshold=2)
    operator = Receiver()
    try:
        verifier = await ops_endpoint(api, operator)
        await create_source(api)
        receiver.default = Reply(status=422)
        sub = await create_subscription(api, receiver.url)
        for _ in range(2):
            await ingest(api)
        await run_worker(settings)  # both die
        await run_worker(settings)  # the next pass counts 2 dead letters
        r = await api.delete(
            "/api/dead-letters", params={"subscription_id": sub["id"]}, headers=AUTH
        )
        assert r.status_code == 200, r.text
        await run_worker(settings)
        events = ops_events(operator, verifier)
    finally:
        operator.close()

    assert [e["type"] for e in events if not e["type"].startswith("delivery.")] == [
        "subscription.dead_letters_exceeded",
        "subscription.dead_letters_recovered",
    ]
    assert of_type(events, "subscription.dead_letters_exceeded") == [
        {"subscription_id": sub["id"], "dead_letters": 2, "threshold": 2}
    ]
    assert len(of_type(events, "delivery.dead")) == 2
