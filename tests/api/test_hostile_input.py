"""What receivers and senders can throw at the relay, and what must come of it."""

from __future__ import annotations

import time

import httpx
import pytest

from relay.devtools.receiver import Receiver, Reply
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription


async def delivery_of(api: httpx.AsyncClient, event_id: str) -> dict[str, object]:
    [delivery] = (await api.get(f"/api/events/{event_id}", headers=AUTH)).json()["deliveries"]
    detail: dict[str, object] = (
        await api.get(f"/api/deliveries/{delivery['id']}", headers=AUTH)
    ).json()
    return detail


@pytest.mark.parametrize(
    "retry_after", ["Mon, 01 Jan 99999999999 00:00:00 GMT", "\u00b2", "9" * 40, "soon"]
)
async def test_a_receivers_odd_retry_after_does_not_cost_the_outcome(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver, retry_after: str
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.script(Reply(status=200, headers={"Retry-After": retry_after}))
    event_id = (await api.post("/ingest/github", content=b"{}")).json()["event_id"]
    await run_worker()
    assert len(receiver.wait_for(1)) == 1
    delivery = await delivery_of(api, event_id)
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1


async def test_non_ascii_event_types_are_delivered(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url)
    r = await api.post(
        "/ingest/github", content=b"{}", headers={"X-GitHub-Event": "caf\u00e9".encode("latin-1")}
    )
    await run_worker()
    [got] = receiver.wait_for(1)
    assert got.headers["x-relay-event-type"] == "caf%C3%A9"
    assert (await delivery_of(api, r.json()["event_id"]))["status"] == "succeeded"


async def test_invalid_content_type_is_400_and_not_stored(api: httpx.AsyncClient) -> None:
    await create_source(api)
    r = await api.post("/ingest/github", content=b"{}", headers={"content-type": b"text/\xe9\x01"})
    assert r.status_code == 400
    assert r.json()["reason"] == "bad_content_type"
    assert (await api.get("/api/events", headers=AUTH)).json()["data"] == []


@pytest.mark.parametrize("value", ["Bearer abc\t", " Bearer abc", "caf\u00e9", "a\x00b"])
async def test_subscription_header_values_must_be_sendable(
    api: httpx.AsyncClient, value: str
) -> None:
    r = await api.post(
        "/api/subscriptions",
        json={"url": "http://x.test/", "sources": ["github"], "headers": {"X-Key": value}},
        headers=AUTH,
    )
    assert r.status_code == 422
    assert "X-Key" in r.text
    assert value.strip() not in r.text


async def test_credential_headers_are_sent_but_never_shown(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await create_source(api)
    headers = {"Authorization": "Bearer s3cr3t", "X-Team": "billing", "X-Hook": "h00k"}
    sub = await create_subscription(api, receiver.url, headers=headers, public_headers=["X-Team"])
    # Write-only unless listed as public, whatever the name looks like.
    assert sub["headers"] == {"Authorization": "[REDACTED]", "X-Team": "billing",
                              "X-Hook": "[REDACTED]"}  # fmt: skip
    shown = (await api.get(f"/api/subscriptions/{sub['id']}", headers=AUTH)).text
    assert "s3cr3t" not in shown
    assert "h00k" not in shown
    await api.post("/ingest/github", content=b"{}")
    await run_worker()
    [got] = receiver.wait_for(1)
    assert got.headers["authorization"] == "Bearer s3cr3t"
    assert got.headers["x-hook"] == "h00k"


async def test_credential_headers_cannot_be_made_public(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/subscriptions",
        json={"url": "http://x.test/", "sources": ["*"], "headers": {"X-Webhook-Auth": "a"},
              "public_headers": ["X-Webhook-Auth"]},
        headers=AUTH,
    )  # fmt: skip
    assert r.status_code == 422
    assert "X-Webhook-Auth" in r.text
    assert (await api.get("/api/subscriptions", headers=AUTH)).json()["data"] == []


@pytest.mark.parametrize("scheme", ["stripe", "standard-webhooks", "slack"])
async def test_absurd_timestamps_are_401_not_500(api: httpx.AsyncClient, scheme: str) -> None:
    secret = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    await api.put(
        "/api/sources/p",
        json={"verification": {"scheme": scheme, "secrets": [secret]}},
        headers=AUTH,
    )
    huge = "9" * 5000
    headers = {
        "stripe": {"Stripe-Signature": f"t={huge},v1=00"},
        "standard-webhooks": {
            "webhook-id": "m",
            "webhook-timestamp": huge,
            "webhook-signature": "v1,AAAA",
        },
        "slack": {"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": huge},
    }[scheme]
    started = time.monotonic()
    r = await api.post("/ingest/p", content=b'{"id":"x","type":"t"}', headers=headers)
    assert r.status_code == 401
    assert r.json()["reason"] in {"malformed_header", "bad_signature"}
    assert time.monotonic() - started < 1
