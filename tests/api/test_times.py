"""Times in the admin API: RFC 3339 strings in every answer, and the filters take them back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from relay.devtools.receiver import Receiver, Reply
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription, ingest, ms_of

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def times_in(answer: Any, path: str = "") -> dict[str, Any]:
    """Every ``*_at`` field of a JSON answer, by where it is."""
    found: dict[str, Any] = {}
    if isinstance(answer, dict):
        for key, value in answer.items():
            if key.endswith("_at"):
                found[f"{path}.{key}"] = value
            found |= times_in(value, f"{path}.{key}")
    elif isinstance(answer, list):
        for i, item in enumerate(answer):
            found |= times_in(item, f"{path}[{i}]")
    return found


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    r = await api.get(path, params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


async def test_every_time_the_api_answers_is_an_rfc3339_string(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    receiver.script(503, Reply(status=400))  # a retry, then dead at once
    event_id = await ingest(api)
    await run_worker()
    receiver.wait_for(2)
    rotated = await api.post(f"/api/subscriptions/{sub['id']}/rotate-secret", headers=AUTH)
    event = await get(api, f"/api/events/{event_id}")
    [delivery] = event["deliveries"]

    answers = {
        "source": await get(api, "/api/sources/github"),
        "sources": await get(api, "/api/sources"),
        "created": sub,
        "subscription": await get(api, f"/api/subscriptions/{sub['id']}"),
        "subscriptions": await get(api, "/api/subscriptions"),
        "rotated": rotated.json(),
        "events": await get(api, "/api/events"),
        "event": event,
        "deliveries": await get(api, "/api/deliveries"),
        "delivery": await get(api, f"/api/deliveries/{delivery['id']}"),
        "dead": await get(api, "/api/dead-letters"),
    }
    times = times_in(answers)
    for where in (
        ".source.created_at",
        ".subscription.updated_at",
        ".subscription.previous_secret_expires_at",
        ".rotated.previous_secret_expires_at",
        ".events.data[0].received_at",
        ".event.deliveries[0].created_at",
        ".delivery.attempt_log[0].started_at",
        ".delivery.attempt_log[0].next_attempt_at",  # the 503's retry
        ".dead.data[0].updated_at",
    ):
        assert times[where] is not None, where
    for where, value in times.items():
        if value is not None:
            assert RFC3339_MS.match(value), (where, value)
            assert ms_of(value) >= before.timestamp() * 1000, (where, value)
    assert answers["delivery"]["attempt_log"][1]["next_attempt_at"] is None  # dead: no next


async def test_filters_take_back_the_times_the_api_answers(api: httpx.AsyncClient) -> None:
    await create_source(api)
    event_id = await ingest(api)
    received = (await get(api, f"/api/events/{event_id}"))["received_at"]
    moment = datetime.fromisoformat(received)

    async def ids(**window: str) -> list[str]:
        return [e["id"] for e in (await get(api, "/api/events", **window))["data"]]

    assert await ids(since=received) == [event_id]
    assert await ids(until=received) == [event_id]
    assert await ids(since=(moment + timedelta(seconds=1)).isoformat()) == []
    # Any offset names the same instant; no zone means UTC; what was taken before still is.
    in_berlin = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert await ids(since=in_berlin) == [event_id]
    assert await ids(until=moment.replace(tzinfo=None).isoformat()) == [event_id]
    assert await ids(since=str(ms_of(received) + 1000)) == []
    assert await ids(until=str(ms_of(received) + 1000)) == [event_id]

    r = await api.get("/api/events", params={"since": "yesterday"}, headers=AUTH)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_the_openapi_document_says_times_are_date_time_strings(
    api: httpx.AsyncClient,
) -> None:
    schemas = (await api.get("/openapi.json")).json()["components"]["schemas"]
    event = next(s for name, s in schemas.items() if name.startswith("EventView"))
    assert event["properties"]["received_at"]["type"] == "string"
    assert event["properties"]["received_at"]["format"] == "date-time"
