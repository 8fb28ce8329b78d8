"""Hostile filters, transforms and payloads: a clear 4xx or a dead delivery with its reason,
never a 500, a hung worker or a lost event."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from relay.devtools.receiver import Receiver
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription, get, ingest

URL = "http://127.0.0.1:9/"


def nested(depth: int) -> str:
    return '{"not": ' * depth + '{"body": "a", "eq": 1}' + "}" * depth


async def create(api: httpx.AsyncClient, content: str) -> httpx.Response:
    return await api.post("/api/subscriptions", content=content,
                          headers={**AUTH, "content-type": "application/json"})  # fmt: skip


async def test_hostile_specs_are_refused_and_nothing_is_stored(api: httpx.AsyncClient) -> None:
    await create_source(api)
    head = f'{{"url": "{URL}", "sources": ["github"], '
    for depth in (17, 900):
        r = await create(api, head + '"filter": ' + nested(depth) + "}")
        assert r.status_code == 422, r.text
        assert "nest at most 16 deep" in r.json()["errors"][0]["msg"]
    # Beyond what the JSON parser nests: refused before any model sees it, with the 422
    # the document gives for a body that is not JSON.
    r = await create(api, head + '"filter": ' + nested(100_000) + "}")
    assert (r.status_code, r.json()["errors"][0]["type"]) == (422, "json_invalid"), r.text

    hostile: list[tuple[dict[str, Any], str]] = [
        ({"filter": {"body": "a", "in": list(range(100_000))}}, "in: the operand is too large"),
        ({"filter": {"body": "a", "regex": "(x+x+)+y" * 40}}, "a pattern has 1 to 256"),
        ({"filter": {"body": "a", "regex": r"(\w+)\1"}}, "regex: cannot compile"),
        ({"filter": {"body": "a", "regex": "(?=lookahead)"}}, "regex: cannot compile"),
        ({"filter": {"body": "a", "regex": "[a-z]{1,1000}{1,1000}"}}, "regex: cannot compile"),
        ({"filter": {"body": "a" + ".b" * 2000, "exists": True}}, "at most 1024 characters"),
        ({"transform": {"body": "[" + ",".join(["@"] * 600) + "]"}}, "at most 1024 characters"),
        ({"transform": {"body": "[" + ",".join(["@"] * 300) + "]"}}, "at most 256 parts"),
        ({"transform": {"body": "to_string(to_string(to_string(@)))"}}, "to_string"),
        ({"transform": {"headers": {f"X-{i}": "{{ @ }}" for i in range(40)}}}, "at most 32"),
    ]  # fmt: skip
    for spec, why in hostile:
        r = await api.post("/api/subscriptions", headers=AUTH,
                           json={"url": URL, "sources": ["github"], **spec})  # fmt: skip
        assert r.status_code == 422, (spec, r.text[:300])
        assert why in r.json()["errors"][0]["msg"], (why, r.json())
    assert (await get(api, "/api/subscriptions"))["data"] == []


async def test_hostile_payloads_are_skipped_or_die_with_their_reason(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    backtracker = await create_subscription(
        api, receiver.url, filter={"body": "s", "regex": "(a+)+b"}
    )
    reshaper = await create_subscription(api, receiver.url, transform={"body": "{s: s}"})
    plain = await create_subscription(api, receiver.url)
    started = time.monotonic()
    bodies = {
        # (a+)+b against a long run of a's: exponential for a backtracking engine.
        "pathological": orjson.dumps({"s": "a" * 200_000}),
        # Deeper than orjson reads (1,024): the body is not JSON to filters and transforms.
        "too_deep": b'{"s": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        "huge_array": orjson.dumps({"s": list(range(150_000))}),
    }
    events = {name: await ingest(api, body=body) for name, body in bodies.items()}

    await run_worker()
    assert time.monotonic() - started < 30

    for name, event_id in events.items():
        detail = await get(api, f"/api/events/{event_id}")
        skipped = {s["subscription_id"]: s["failed"] for s in detail["skipped"]}
        assert backtracker["id"] in skipped, name
        status = {d["subscription_id"]: d for d in detail["deliveries"]}
        assert status[plain["id"]]["status"] == "succeeded", name
        # Nothing accepted is lost: the provider's body is there, byte for byte.
        r = await api.get(f"/api/events/{event_id}/body", headers=AUTH)
        assert r.content == bodies[name]
    assert skipped_reason(await get(api, f"/api/events/{events['too_deep']}"), backtracker) == (
        "body s regex: the body is not JSON"
    )
    deep = await get(api, f"/api/events/{events['too_deep']}")
    [dead] = [d for d in deep["deliveries"] if d["subscription_id"] == reshaper["id"]]
    assert (dead["status"], dead["last_error"]) == ("dead", "TransformFailed")
    [attempt] = (await get(api, f"/api/deliveries/{dead['id']}"))["attempt_log"]
    assert "not JSON" in attempt["error_message"]
    for name in ("pathological", "huge_array"):
        detail = await get(api, f"/api/events/{events[name]}")
        [shaped] = [d for d in detail["deliveries"] if d["subscription_id"] == reshaper["id"]]
        assert shaped["status"] == "succeeded", name


def skipped_reason(detail: dict[str, Any], sub: dict[str, Any]) -> str:
    return str({s["subscription_id"]: s["failed"] for s in detail["skipped"]}[sub["id"]])
