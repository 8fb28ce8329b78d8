"""Trust at both ends, through the real API: verification on ingest, signatures on delivery.

Signatures are made and checked by the providers' own libraries where one exists (stripe,
standardwebhooks, svix); GitHub, Shopify and Slack requests are signed per their docs.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import standardwebhooks
import stripe
import svix.webhooks
from structlog.testing import capture_logs

from relay.devtools.receiver import Receiver
from tests.conftest import AUTH, WorkerRun, create_subscription, event_count, ms_of, running_app

GH_SECRET = "It's a Secret to Everybody"
STRIPE_SECRET = "whsec_test_stripe_secret_value"
SW_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-key-0123456789").decode()
SHOP_SECRET = "shpss_shopify_app_secret"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
HMAC_SECRET = "generic-provider-secret"


def _hmac(secret: str, payload: bytes, algo: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), payload, algo).digest()


def github(body: bytes, secret: str = GH_SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": "sha256=" + _hmac(secret, body).hex(),
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "gh-delivery-1",
    }


def stripe_headers(
    body: bytes, secret: str = STRIPE_SECRET, at: int | None = None
) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=at or int(time.time())
    )
    return {"Stripe-Signature": header}


def standard(body: bytes, secret: str = SW_SECRET, at: float | None = None) -> dict[str, str]:
    when = datetime.fromtimestamp(at or time.time(), tz=UTC)
    signature = standardwebhooks.Webhook(secret).sign("msg_1", when, body.decode())
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def shopify(body: bytes, secret: str = SHOP_SECRET) -> dict[str, str]:
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(_hmac(secret, body)).decode(),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "shop-1",
    }


def slack(body: bytes, secret: str = SLACK_SECRET, at: int | None = None) -> dict[str, str]:
    ts = str(at or int(time.time()))
    sig = "v0=" + _hmac(secret, b"v0:" + ts.encode() + b":" + body).hex()
    return {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts}


def generic(body: bytes, secret: str = HMAC_SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = _hmac(secret, ts.encode() + b"." + body, "sha512")
    return {"X-Sig": "sha512=" + base64.b64encode(digest).decode(), "X-Sig-Time": ts}


CASES: dict[str, tuple[dict[str, Any], Any, bytes, str | None, str | None]] = {
    # scheme: (verification block, signer, body, expected event type, idempotency key)
    "github": (
        {"scheme": "github", "secrets": [GH_SECRET]},
        github,
        b'{"action":"opened","number":1}',
        "pull_request.opened",
        "gh-delivery-1",
    ),
    "stripe": (
        {"scheme": "stripe", "secrets": [STRIPE_SECRET]},
        stripe_headers,
        b'{"id":"evt_stripe_1","type":"invoice.paid"}',
        "invoice.paid",
        "evt_stripe_1",
    ),
    "standard-webhooks": (
        {"scheme": "standard-webhooks", "secrets": [SW_SECRET]},
        standard,
        b'{"type":"user.created"}',
        "user.created",
        "msg_1",
    ),
    "shopify": (
        {"scheme": "shopify", "secrets": [SHOP_SECRET]},
        shopify,
        b'{"id":1}',
        "orders/create",
        "shop-1",
    ),
    "slack": (
        {"scheme": "slack", "secrets": [SLACK_SECRET]},
        slack,
        b'{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention"}}',
        "app_mention",
        "Ev1",
    ),
    "hmac": (
        {
            "scheme": "hmac",
            "secrets": [HMAC_SECRET],
            "header": "X-Sig",
            "algorithm": "sha512",
            "encoding": "base64",
            "prefix": "sha512=",
            "timestamp_header": "X-Sig-Time",
        },
        generic,
        b"plain=text&not=json",
        None,
        None,
    ),
}


async def put_source(
    api: httpx.AsyncClient, name: str, verification: dict[str, Any]
) -> httpx.Response:
    return await api.put(f"/api/sources/{name}", json={"verification": verification}, headers=AUTH)


@pytest.mark.parametrize("scheme", list(CASES))
async def test_each_scheme_accepts_genuine_and_rejects_forged(
    api: httpx.AsyncClient, scheme: str
) -> None:
    verification, sign, body, event_type, idem = CASES[scheme]
    r = await put_source(api, "p", verification)
    assert r.status_code == 201, r.text
    # Secrets are write-only: never shown back.
    shown = json.dumps(r.json()) + (await api.get("/api/sources/p", headers=AUTH)).text
    assert verification["secrets"][0] not in shown
    assert r.json()["verification"]["secret_count"] == 1

    r = await api.post("/ingest/p", content=body, headers=sign(body))
    assert r.status_code == 202, r.text
    event = (await api.get(f"/api/events/{r.json()['event_id']}", headers=AUTH)).json()
    assert event["event_type"] == event_type
    assert event["idempotency_key"] == idem

    with capture_logs() as logs:
        forged = await api.post(
            "/ingest/p", content=body, headers=sign(body, secret="wrong-secret")
        )
        tampered = await api.post("/ingest/p", content=body + b" ", headers=sign(body))
        unsigned = await api.post("/ingest/p", content=body)
    assert [forged.status_code, tampered.status_code, unsigned.status_code] == [401] * 3
    assert forged.headers["content-type"] == "application/problem+json"
    assert forged.json()["reason"] == "bad_signature"
    assert tampered.json()["reason"] == "bad_signature"
    assert unsigned.json()["reason"] == "missing_header"
    assert "wrong-secret" not in forged.text
    assert verification["secrets"][0] not in forged.text
    rejected = [e for e in logs if e["event"] == "ingest.rejected"]
    assert [e["reason"] for e in rejected] == ["bad_signature", "bad_signature", "missing_header"]
    assert await event_count(api) == 1  # nothing stored for the rejects

    metrics = (await api.get("/metrics")).text
    assert 'relay_ingest_total{outcome="rejected",reason="bad_signature",source="p"}' in metrics


@pytest.mark.parametrize(
    ("scheme", "signer"),
    [("stripe", stripe_headers), ("standard-webhooks", standard), ("slack", slack)],
)
async def test_stale_and_future_timestamps_are_refused(
    api: httpx.AsyncClient, scheme: str, signer: Any
) -> None:
    verification, _, body, _, _ = CASES[scheme]
    await put_source(api, "p", verification)
    for offset in (-301, 301):
        r = await api.post(
            "/ingest/p", content=body, headers=signer(body, at=int(time.time()) + offset)
        )
        assert r.status_code == 401
        assert r.json()["reason"] == "timestamp_outside_tolerance"


async def test_rotation_accepts_either_secret(api: httpx.AsyncClient) -> None:
    await put_source(api, "gh", {"scheme": "github", "secrets": ["new-secret", GH_SECRET]})
    body = b'{"action":"closed"}'
    assert (await api.post("/ingest/gh", content=body, headers=github(body))).status_code == 202
    r = await api.post("/ingest/gh", content=body, headers=github(body, secret="new-secret"))
    assert r.status_code == 200  # same delivery id: a duplicate, but verified first


async def test_slack_url_verification_is_answered_not_stored(api: httpx.AsyncClient) -> None:
    await put_source(api, "slack", {"scheme": "slack", "secrets": [SLACK_SECRET]})
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"  # Slack's docs example
    body = json.dumps({"type": "url_verification", "challenge": challenge}).encode()
    r = await api.post("/ingest/slack", content=body, headers=slack(body))
    assert r.status_code == 200
    assert r.json() == {"challenge": challenge}
    assert await event_count(api) == 0


async def test_invalid_verification_config_is_422_without_echoing_secrets(
    api: httpx.AsyncClient,
) -> None:
    r = await put_source(api, "sw", {"scheme": "standard-webhooks", "secrets": ["whsec_abcde"]})
    assert r.status_code == 422
    assert "abcde" not in r.text
    r = await put_source(api, "gh", {"scheme": "github", "secrets": []})
    assert r.status_code == 422
    r = await put_source(api, "gh", {"scheme": "github", "secrets": ["s"], "bogus": 1})
    assert r.status_code == 422


# --- outbound ------------------------------------------------------------------------------


def verify_standard(secret: str, body: bytes, headers: dict[str, str]) -> None:
    standardwebhooks.Webhook(secret).verify(body, headers)


async def test_deliveries_verify_with_the_standard_webhooks_library(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    await api.put("/api/sources/github", json={}, headers=AUTH)
    sub = await create_subscription(api, receiver.url, svix_headers=True)
    receiver.script(503, 200)  # the retry is signed afresh
    body = b'{"hello":"world"}'
    assert (await api.post("/ingest/github", content=body)).status_code == 202
    await run_worker()

    for got in receiver.wait_for(2):
        verify_standard(sub["secret"], got.body, got.headers)
        svix_only = {k: v for k, v in got.headers.items() if not k.startswith("webhook-")}
        svix.webhooks.Webhook(sub["secret"]).verify(got.body, svix_only)
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
            verify_standard(sub["secret"], got.body + b"x", got.headers)


async def test_rotation_signs_with_both_secrets_during_the_overlap(
    make_settings, run_worker: WorkerRun, receiver: Receiver
) -> None:
    from relay.api.app import create_app

    async with running_app(create_app(make_settings())) as api:
        await api.put("/api/sources/github", json={}, headers=AUTH)
        sub = await create_subscription(api, receiver.url)
        old = sub["secret"]
        r = await api.post(f"/api/subscriptions/{sub['id']}/rotate-secret", headers=AUTH)
        assert r.status_code == 200
        new = r.json()["secret"]
        assert new.startswith("whsec_")
        assert new != old
        expires = ms_of(r.json()["previous_secret_expires_at"])
        assert expires > time.time() * 1000 + 23 * 3600 * 1000
        shown = (await api.get(f"/api/subscriptions/{sub['id']}", headers=AUTH)).text
        assert new not in shown
        assert old not in shown
        await api.post("/ingest/github", content=b"{}")
        await run_worker()
    [got] = receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verify_standard(old, got.body, got.headers)  # a receiver not yet updated
    verify_standard(new, got.body, got.headers)  # a receiver already updated


async def test_after_the_overlap_only_the_new_secret_signs(
    make_settings, receiver: Receiver
) -> None:
    from relay.api.app import create_app
    from relay.delivery import queue
    from workers.main import build_worker

    settings = make_settings(secret_rotation_overlap_s=0)
    async with running_app(create_app(settings)) as api:
        await api.put("/api/sources/github", json={}, headers=AUTH)
        sub = await create_subscription(api, receiver.url)
        new = (
            await api.post(f"/api/subscriptions/{sub['id']}/rotate-secret", headers=AUTH)
        ).json()["secret"]
        await api.post("/ingest/github", content=b"{}")
    pool = await queue.connect(settings.require_redis_url(), settings.queue_name)
    worker = build_worker(settings, pool, burst=True, handle_signals=False)
    await worker.main()
    await worker.close()
    [got] = receiver.wait_for(1)
    verify_standard(new, got.body, got.headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        verify_standard(sub["secret"], got.body, got.headers)
