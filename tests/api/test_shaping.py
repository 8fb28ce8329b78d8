"""Filters, transforms and preview through the real app and a real Redis."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis

from relay.storage.keys import Keys
from tests.conftest import AUTH, create_source, create_subscription, get, ingest
from tests.payloads import GITHUB_PULL_REQUEST, GITHUB_PUSH, raw

MAIN_PRS = {
    "all": [
        {"header": "X-GitHub-Event", "eq": "pull_request"},
        {"body": "pull_request.base.ref", "eq": "main"},
        {"body": "repository.full_name", "in": ["acme/web"]},
    ]
}


async def test_invalid_filters_and_transforms_answer_422_with_the_path(
    api: httpx.AsyncClient,
) -> None:
    await create_source(api)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"filter": {"all": [{"body": "ref", "eq": 1}, {"body": "ref", "regex": "(a"}]}},
         "all[1].regex: cannot compile"),
        ({"filter": {"any": [{"body": "ref", "matches": "x"}]}},
         "any[0].matches: unknown operator"),
        ({"filter": {"body": "ref[", "eq": 1}}, "body: not a valid JMESPath expression"),
        ({"filter": {"body": "ref", "glob": "x" * 300}}, "glob: a pattern has 1 to 256"),
        ({"transform": {"body": "{a: "}}, "body: not a valid JMESPath expression"),
        ({"transform": {"headers": {"X-A": "{{ nope( }}"}}}, "headers.X-A"),
        ({"transform": {"body": "to_string(@)"}}, "function not allowed here: to_string"),
    ]  # fmt: skip
    for spec, where in bad:
        r = await api.post(
            "/api/subscriptions",
            headers=AUTH,
            json={"url": "http://127.0.0.1:9/", "sources": ["github"], **spec},
        )
        assert r.status_code == 422, (spec, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        [error] = r.json()["errors"]
        assert error["loc"] == ["body", next(iter(spec))]
        assert where in error["msg"], error
    r = await api.post("/api/subscriptions", headers=AUTH, json={
        "url": "http://127.0.0.1:9/", "sources": ["github"],
        "filter": {"header": "X-Not-Stored", "eq": "x"}})  # fmt: skip
    assert r.status_code == 422
    assert "'x-not-stored' is not stored with events" in r.json()["detail"]
    assert (await get(api, "/api/subscriptions"))["data"] == []  # nothing was stored

    sub = await create_subscription(api, "http://127.0.0.1:9/", filter=MAIN_PRS)
    r = await api.patch(f"/api/subscriptions/{sub['id']}", headers=AUTH,
                        json={"filter": {"not": {"body": "a", "regex": "a{1,99999}"}}})  # fmt: skip
    assert r.status_code == 422
    assert "not.regex: cannot compile" in r.json()["errors"][0]["msg"]
    assert (await get(api, f"/api/subscriptions/{sub['id']}"))["filter"] == MAIN_PRS
    r = await api.patch(f"/api/subscriptions/{sub['id']}", headers=AUTH, json={"filter": None})
    assert r.status_code == 200
    assert r.json()["filter"] is None


async def test_a_filter_that_does_not_match_makes_no_delivery_and_says_why(
    api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    await create_source(api)
    prs = await create_subscription(api, "http://127.0.0.1:9/prs", filter=MAIN_PRS)
    everything = await create_subscription(api, "http://127.0.0.1:9/all")
    by_header = await create_subscription(
        api, "http://127.0.0.1:9/h", filter={"header": "x-github-event", "eq": "push"}
    )

    pr_event = await ingest(api, "pull_request", raw(GITHUB_PULL_REQUEST))
    detail = await get(api, f"/api/events/{pr_event}")
    assert {d["subscription_id"] for d in detail["deliveries"]} == {prs["id"], everything["id"]}
    assert detail["skipped"] == [
        {"subscription_id": by_header["id"], "failed": 'header x-github-event eq "push"'}
    ]

    # The record of what was skipped expires with the event (read one after the other, so
    # the second TTL may be a few milliseconds further along).
    skipped_ttl = await redis.pttl(Keys.event_skipped(pr_event))
    event_ttl = await redis.pttl(Keys.event(pr_event))
    assert skipped_ttl > 0
    assert abs(skipped_ttl - event_ttl) < 1000

    push_event = await ingest(api, "push", raw(GITHUB_PUSH))
    detail = await get(api, f"/api/events/{push_event}")
    assert {d["subscription_id"] for d in detail["deliveries"]} == {
        everything["id"],
        by_header["id"],
    }
    assert detail["skipped"] == [
        {"subscription_id": prs["id"], "failed": 'all[0]: header x-github-event eq "pull_request"'}
    ]

    # A form-encoded body: header conditions still work, body conditions never match.
    form = await ingest(
        api, "pull_request", b"payload=%7B%7D", content_type="application/x-www-form-urlencoded"
    )
    detail = await get(api, f"/api/events/{form}")
    assert {d["subscription_id"] for d in detail["deliveries"]} == {everything["id"]}
    reasons = {s["subscription_id"]: s["failed"] for s in detail["skipped"]}
    assert reasons[prs["id"]] == "all[1]: body pull_request.base.ref eq: the body is not JSON"

    # A replay to every matching subscription applies the filters too; one named gets it.
    r = await api.post(f"/api/events/{push_event}/replay", headers=AUTH, json={})
    assert {d["subscription_id"] for d in r.json()["deliveries"]} == {
        everything["id"],
        by_header["id"],
    }
    r = await api.post(f"/api/events/{push_event}/replay", headers=AUTH,
                       json={"subscription_ids": [prs["id"]]})  # fmt: skip
    assert [d["subscription_id"] for d in r.json()["deliveries"]] == [prs["id"]]


async def test_preview_a_subscription_on_a_stored_event_and_on_samples(
    api: httpx.AsyncClient,
) -> None:
    await create_source(api)
    sub = await create_subscription(
        api, "http://127.0.0.1:9/", event_types=["pull_request", "push"], filter=MAIN_PRS,
        headers={"Authorization": "Bearer s3cret"},
        transform={"body": "{pr: pull_request.number, title: pull_request.title}",
                   "headers": {"X-Repo": "{{ body.repository.full_name }}"}},
    )  # fmt: skip
    event_id = await ingest(api, "pull_request", raw(GITHUB_PULL_REQUEST))
    path = f"/api/subscriptions/{sub['id']}/preview"

    r = await api.post(path, headers=AUTH, json={"event_id": event_id})
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["matched"] is True
    assert seen["failed"] is None
    assert orjson.loads(seen["body"]) == {"pr": 1347, "title": "Amazing new feature"}
    assert seen["headers"]["X-Repo"] == "acme/web"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["webhook-id"] == event_id
    assert seen["headers"]["webhook-signature"] == "(signed when sent)"
    assert seen["headers"]["Authorization"] == "[REDACTED]"
    assert "s3cret" not in r.text
    assert seen["transform_version"]

    r = await api.post(path, headers=AUTH, json={
        "body": GITHUB_PUSH, "headers": {"X-GitHub-Event": "pull_request"}})  # fmt: skip
    assert r.json()["matched"] is False
    assert r.json()["failed"] == 'all[1]: body pull_request.base.ref eq "main"'
    assert r.json()["body"] is None
    r = await api.post(path, headers=AUTH, json={"raw_body": "x", "event_type": "issues"})
    assert r.json()["failed"] == "event type 'issues' matches none of event_types"

    for wrong, status in [({"event_id": "evt_nope"}, 404), ({}, 422),
                          ({"event_id": event_id, "body": {}}, 422)]:  # fmt: skip
        r = await api.post(path, headers=AUTH, json=wrong)
        assert r.status_code == status, r.text
    r = await api.post("/api/subscriptions/sub_nope/preview", headers=AUTH, json={"body": {}})
    assert r.status_code == 404


async def test_inline_preview_tries_a_filter_and_transform_before_saving(
    api: httpx.AsyncClient,
) -> None:
    r = await api.post("/api/preview", headers=AUTH, json={
        "filter": {"body": "ref", "prefix": "refs/heads/"},
        "transform": {"body": "{after: after, n: length(commits)}"},
        "body": GITHUB_PUSH})  # fmt: skip
    assert r.status_code == 200, r.text
    assert orjson.loads(r.json()["body"]) == {"after": GITHUB_PUSH["after"], "n": 2}

    r = await api.post(
        "/api/preview",
        headers=AUTH,
        json={"transform": {"body": "[@, @, @, @]"}, "raw_body": '{"a": "' + "x" * 300_000 + '"}'},
    )
    assert r.status_code == 200
    assert r.json()["matched"] is True
    assert r.json()["error"] == "TransformFailed: the transformed body exceeds 1048576 bytes"

    r = await api.post("/api/preview", headers=AUTH, json={
        "filter": {"body": "a", "regex": "(?P<x>a)(?P=x)"}, "body": {}})  # fmt: skip
    assert r.status_code == 422
    assert "regex: cannot compile" in r.json()["errors"][0]["msg"]
