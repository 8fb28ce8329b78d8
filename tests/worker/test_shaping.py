"""Transformed deliveries end to end: real app, worker, Redis and receiver."""

from __future__ import annotations

import httpx
import orjson
import standardwebhooks
from structlog.testing import capture_logs

from relay.devtools.receiver import Receiver, Reply
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription, get, ingest
from tests.payloads import GITHUB_PUSH, STRIPE_INVOICE_PAID, raw


async def test_transformed_body_is_signed_and_retries_send_the_same_bytes(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    sub = await create_subscription(
        api, receiver.url,
        transform={"body": "{repo: repository.full_name, commits: commits[*].id}",
                   "headers": {"X-Repo": "{{ body.repository.full_name }}"}},
    )  # fmt: skip
    receiver.script(Reply(503), Reply(503))
    event_id = await ingest(api, body=raw(GITHUB_PUSH))

    await run_worker()

    sent = receiver.wait_for(3)
    expected = {"repo": "acme/api", "commits": [c["id"] for c in GITHUB_PUSH["commits"]]}
    assert orjson.loads(sent[0].body) == expected
    assert {got.body for got in sent} == {sent[0].body}  # every retry: the same bytes
    for got in sent:
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-repo"] == "acme/api"
        standardwebhooks.Webhook(sub["secret"]).verify(got.body, got.headers)
    assert [got.headers["x-relay-attempt"] for got in sent] == ["1", "2", "3"]

    [delivery] = (await get(api, f"/api/events/{event_id}"))["deliveries"]
    attempts = (await get(api, f"/api/deliveries/{delivery['id']}"))["attempt_log"]
    versions = {a["transform_version"] for a in attempts}
    assert len(attempts) == 3
    assert len(versions) == 1
    assert None not in versions
    # The event keeps the provider's body.
    r = await api.get(f"/api/events/{event_id}/body", headers=AUTH)
    assert r.content == raw(GITHUB_PUSH)


async def test_a_transform_that_blows_up_kills_only_its_delivery(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    await create_source(api, "stripe", event_type_header=None, idempotency_header=None)
    blowup = await create_subscription(
        api, receiver.url + "/blowup", sources=["stripe"],
        transform={"body": "[@, @, @, @, {a: @, b: @}]"},
    )  # fmt: skip
    plain = await create_subscription(api, receiver.url + "/plain", sources=["stripe"])
    big = {**STRIPE_INVOICE_PAID, "padding": "x" * 300_000}
    event_id = await ingest(api, body=raw(big), source="stripe")

    with capture_logs() as logs:
        await run_worker()

    [got] = receiver.wait_for(1)
    assert got.path.endswith("/plain")
    assert got.body == raw(big)
    deliveries = {
        d["subscription_id"]: d for d in (await get(api, f"/api/events/{event_id}"))["deliveries"]
    }
    dead = deliveries[blowup["id"]]
    assert dead["status"] == "dead"
    assert dead["attempts"] == 1
    assert dead["last_error"] == "TransformFailed"
    [attempt] = (await get(api, f"/api/deliveries/{dead['id']}"))["attempt_log"]
    assert attempt["error_message"] == "the transformed body exceeds 1048576 bytes"
    assert attempt["status_code"] is None
    assert deliveries[plain["id"]]["status"] == "succeeded"
    assert dead["id"] in {d["id"] for d in (await get(api, "/api/dead-letters"))["data"]}
    [line] = [e for e in logs if e["event"] == "delivery.dead"]
    assert line["error"] == "TransformFailed: the transformed body exceeds 1048576 bytes"
    assert len(receiver.requests) == 1  # nothing was sent for the dead one
