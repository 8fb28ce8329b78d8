"""Inbound verification schemes, checked against vectors their providers produce.

Where a provider ships a library, the library makes the signatures: Stripe's
``stripe.WebhookSignature.generate_signature_header`` for ``stripe``; the ``standardwebhooks``
and ``svix`` packages' ``Webhook(secret).sign`` for ``standard-webhooks``. GitHub and Slack
vectors are the worked examples in their documentation; Shopify publishes none, so its vector
is computed here with ``hmac`` following its documented algorithm. Libraries sign ``str``
bodies, so non-UTF-8 bodies are signed here with ``hmac`` directly.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks
import stripe
import svix.webhooks
from pydantic import TypeAdapter, ValidationError

from relay.domain.verification import (
    GitHubScheme,
    HmacScheme,
    NoneScheme,
    ShopifyScheme,
    SlackScheme,
    StandardWebhooksScheme,
    StripeScheme,
    VerificationConfig,
    VerificationError,
    Verified,
    check_headers,
    verify,
)

NOW = 1_700_000_000
# Neither UTF-8 nor JSON: schemes that sign raw bytes must still verify it.
BINARY_BODY = b"\xff\xfe\x00\x80binary\xc3"


def _hmac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, algorithm).digest()


def _fails(
    config: VerificationConfig,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    reason: str,
) -> VerificationError:
    """Assert the request is refused for ``reason``, without echoing secrets or signatures."""
    with pytest.raises(VerificationError) as info:
        verify(config, headers, body, now)
    error = info.value
    assert error.reason == reason, error
    text = str(error)
    secrets = getattr(config, "secrets", [])
    for secret in secrets:
        assert secret.get_secret_value() not in text
    for value in headers.values():
        if len(value) >= 8:
            assert value not in text
    return error


# --- none ----------------------------------------------------------------------------------


def test_none_accepts_anything() -> None:
    assert verify(NoneScheme(), {}, BINARY_BODY, now=0) == Verified()
    assert verify(NoneScheme(), {"x-anything": "1"}, b"{}", now=NOW) == Verified()


# --- github --------------------------------------------------------------------------------

# docs.github.com, "Validating webhook deliveries" -> "Testing the webhook payload validation".
GITHUB_DOC_SECRET = "It's a Secret to Everybody"
GITHUB_DOC_BODY = b"Hello, World!"
GITHUB_DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
GITHUB = GitHubScheme(secrets=[GITHUB_DOC_SECRET])


def _github_headers(signature: str, event: str = "push") -> dict[str, str]:
    return {
        "x-hub-signature-256": signature,
        "x-github-event": event,
        "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }


def _github_sign(secret: str, body: bytes) -> str:
    return "sha256=" + _hmac(secret.encode(), body).hex()


def test_github_doc_example() -> None:
    """GitHub's documented vector (a non-JSON body): the event type is just the header."""
    assert _github_sign(GITHUB_DOC_SECRET, GITHUB_DOC_BODY) == GITHUB_DOC_SIGNATURE
    result = verify(GITHUB, _github_headers(GITHUB_DOC_SIGNATURE), GITHUB_DOC_BODY, NOW)
    assert result == Verified(
        event_type="push", idempotency_key="72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )


def test_github_json_action_refines_event_type() -> None:
    body = json.dumps({"action": "opened", "number": 1}).encode()
    headers = _github_headers(_github_sign(GITHUB_DOC_SECRET, body), event="pull_request")
    assert verify(GITHUB, headers, body, NOW).event_type == "pull_request.opened"


def test_github_uppercase_hex_is_accepted() -> None:
    signature = "sha256=" + GITHUB_DOC_SIGNATURE.removeprefix("sha256=").upper()
    assert verify(GITHUB, _github_headers(signature), GITHUB_DOC_BODY, NOW).event_type == "push"


def test_github_binary_body() -> None:
    headers = _github_headers(_github_sign(GITHUB_DOC_SECRET, BINARY_BODY))
    assert verify(GITHUB, headers, BINARY_BODY, NOW).event_type == "push"


def test_github_wrong_secret() -> None:
    config = GitHubScheme(secrets=["not the secret"])
    _fails(config, _github_headers(GITHUB_DOC_SIGNATURE), GITHUB_DOC_BODY, NOW, "bad_signature")


def test_github_tampered_body() -> None:
    headers = _github_headers(GITHUB_DOC_SIGNATURE)
    _fails(GITHUB, headers, b"Hello, World?", NOW, "bad_signature")


def test_github_missing_header() -> None:
    headers = _github_headers(GITHUB_DOC_SIGNATURE)
    del headers["x-hub-signature-256"]
    error = _fails(GITHUB, headers, GITHUB_DOC_BODY, NOW, "missing_header")
    assert "X-Hub-Signature-256" in error.detail


@pytest.mark.parametrize(
    "signature",
    [
        GITHUB_DOC_SIGNATURE.removeprefix("sha256="),  # no scheme prefix
        "sha1=" + GITHUB_DOC_SIGNATURE.removeprefix("sha256="),
        "sha256=not-hex-at-all",
    ],
)
def test_github_malformed_header(signature: str) -> None:
    _fails(GITHUB, _github_headers(signature), GITHUB_DOC_BODY, NOW, "malformed_header")


@pytest.mark.parametrize(
    "secrets", [["new secret", GITHUB_DOC_SECRET], [GITHUB_DOC_SECRET, "new secret"]]
)
def test_github_rotated_secrets(secrets: list[str]) -> None:
    config = GitHubScheme(secrets=secrets)
    assert verify(config, _github_headers(GITHUB_DOC_SIGNATURE), GITHUB_DOC_BODY, NOW)


# --- stripe --------------------------------------------------------------------------------

STRIPE_SECRET = "whsec_test_secret_for_relay"
STRIPE_OTHER_SECRET = "whsec_rotated_secret_for_relay"
STRIPE_PAYLOAD = json.dumps({"id": "evt_1NG8Du2eZvKYlo2C", "type": "payment_intent.succeeded"})
STRIPE = StripeScheme(secrets=[STRIPE_SECRET])


def _stripe_header(payload: str = STRIPE_PAYLOAD, secret: str = STRIPE_SECRET, t: int = NOW) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=t)
    return header


def _stripe_headers(header: str) -> dict[str, str]:
    return {"stripe-signature": header}


def test_stripe_valid() -> None:
    header = _stripe_header()
    result = verify(STRIPE, _stripe_headers(header), STRIPE_PAYLOAD.encode(), NOW)
    assert result == Verified(
        event_type="payment_intent.succeeded", idempotency_key="evt_1NG8Du2eZvKYlo2C"
    )


def test_stripe_secret_is_not_base64_decoded() -> None:
    """Stripe keys the HMAC with the whole ``whsec_`` string; here it is valid base64 too."""
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
    header = _stripe_header(secret=secret)
    config = StripeScheme(secrets=[secret])
    assert verify(config, _stripe_headers(header), STRIPE_PAYLOAD.encode(), NOW).event_type


def test_stripe_wrong_secret() -> None:
    header = _stripe_header(secret="whsec_someone_else")
    _fails(STRIPE, _stripe_headers(header), STRIPE_PAYLOAD.encode(), NOW, "bad_signature")


def test_stripe_tampered_body() -> None:
    header = _stripe_header()
    tampered = STRIPE_PAYLOAD.replace("succeeded", "failed").encode()
    _fails(STRIPE, _stripe_headers(header), tampered, NOW, "bad_signature")


def test_stripe_tampered_timestamp() -> None:
    header = _stripe_header().replace(f"t={NOW}", f"t={NOW + 1}")
    _fails(STRIPE, _stripe_headers(header), STRIPE_PAYLOAD.encode(), NOW, "bad_signature")


def test_stripe_missing_header() -> None:
    _fails(STRIPE, {}, STRIPE_PAYLOAD.encode(), NOW, "missing_header")


@pytest.mark.parametrize("now", [NOW + 301, NOW - 301])
def test_stripe_stale_and_future_timestamps(now: float) -> None:
    headers = _stripe_headers(_stripe_header())
    _fails(STRIPE, headers, STRIPE_PAYLOAD.encode(), now, "timestamp_outside_tolerance")


@pytest.mark.parametrize("now", [NOW + 300, NOW - 300])
def test_stripe_tolerance_is_inclusive(now: float) -> None:
    assert verify(STRIPE, _stripe_headers(_stripe_header()), STRIPE_PAYLOAD.encode(), now)


def test_stripe_custom_tolerance() -> None:
    config = StripeScheme(secrets=[STRIPE_SECRET], tolerance_s=10)
    headers = _stripe_headers(_stripe_header())
    _fails(config, headers, STRIPE_PAYLOAD.encode(), NOW + 11, "timestamp_outside_tolerance")


def test_stripe_rotation_several_v1_and_several_secrets() -> None:
    """A header with one v1 per secret is accepted by a verifier holding either secret."""
    old = _stripe_header(secret=STRIPE_SECRET)
    new = _stripe_header(secret=STRIPE_OTHER_SECRET)
    header = old + "," + new.split(",", 1)[1]  # t=..,v1=<old>,v1=<new>
    body = STRIPE_PAYLOAD.encode()
    for secret in (STRIPE_SECRET, STRIPE_OTHER_SECRET):
        # Stripe's own verifier agrees that the combined header is valid for each secret.
        assert stripe.WebhookSignature.verify_header(STRIPE_PAYLOAD, header, secret, None)
        assert verify(StripeScheme(secrets=[secret]), _stripe_headers(header), body, NOW)
    both = StripeScheme(secrets=[STRIPE_OTHER_SECRET, STRIPE_SECRET])
    assert verify(both, _stripe_headers(old), body, NOW)


def test_stripe_other_schemes_are_ignored() -> None:
    header = _stripe_header() + ",v0=" + "ab" * 32
    assert verify(STRIPE, _stripe_headers(header), STRIPE_PAYLOAD.encode(), NOW)


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW},v0=" + "ab" * 32,  # no v1
        "v1=" + "ab" * 32,  # no t
        f"t={NOW},t={NOW},v1=" + "ab" * 32,
        "t=yesterday,v1=" + "ab" * 32,
        f"t={NOW},v1=zz",
        f"t={NOW};v1=" + "ab" * 32,
    ],
)
def test_stripe_malformed_header(header: str) -> None:
    _fails(STRIPE, _stripe_headers(header), STRIPE_PAYLOAD.encode(), NOW, "malformed_header")


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", BINARY_BODY])
def test_stripe_body_must_be_a_json_object(body: bytes) -> None:
    # Signed correctly (with hmac: Stripe's helper only signs text), so only the body is wrong.
    signature = _hmac(STRIPE_SECRET.encode(), f"{NOW}.".encode() + body).hex()
    headers = _stripe_headers(f"t={NOW},v1={signature}")
    _fails(STRIPE, headers, body, NOW, "malformed_body")


def test_stripe_accepted_headers_pass_stripes_verifier() -> None:
    """Cross-check: a header we accept is one Stripe's library accepts too."""
    signature = _hmac(STRIPE_SECRET.encode(), f"{NOW}.".encode() + STRIPE_PAYLOAD.encode()).hex()
    header = f"t={NOW},v1={signature}"
    assert verify(STRIPE, _stripe_headers(header), STRIPE_PAYLOAD.encode(), NOW)
    assert stripe.WebhookSignature.verify_header(STRIPE_PAYLOAD, header, STRIPE_SECRET, None)


# --- standard webhooks / svix --------------------------------------------------------------

# The Standard Webhooks specification's example secret, plus a second one for rotation.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_OTHER_SECRET = "whsec_" + base64.b64encode(b"another twenty-four byte").decode()
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_PAYLOAD = '{"type": "invoice.paid", "data": {"id": 7}}'
STANDARD = StandardWebhooksScheme(secrets=[SW_SECRET])


def _sw_sign(secret: str = SW_SECRET, payload: str = SW_PAYLOAD, t: int = NOW) -> str:
    signature: str = standardwebhooks.Webhook(secret).sign(
        SW_ID, datetime.fromtimestamp(t, UTC), payload
    )
    return signature


def _sw_headers(signature: str, t: int = NOW, prefix: str = "webhook") -> dict[str, str]:
    return {f"{prefix}-id": SW_ID, f"{prefix}-timestamp": str(t), f"{prefix}-signature": signature}


def test_standard_webhooks_valid() -> None:
    result = verify(STANDARD, _sw_headers(_sw_sign()), SW_PAYLOAD.encode(), NOW)
    assert result == Verified(event_type="invoice.paid", idempotency_key=SW_ID)


def test_standard_webhooks_spec_vector() -> None:
    """The specification's published example, as the library reproduces it."""
    payload = '{"test": 2432232314}'
    signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert _sw_sign(payload=payload, t=1614265330) == signature
    headers = _sw_headers(signature, t=1614265330)
    assert verify(STANDARD, headers, payload.encode(), 1614265330).idempotency_key == SW_ID


def test_svix_signed_with_svix_names() -> None:
    signature = svix.webhooks.Webhook(SW_SECRET).sign(
        SW_ID, datetime.fromtimestamp(NOW, UTC), SW_PAYLOAD
    )
    headers = _sw_headers(signature, prefix="svix")
    assert verify(STANDARD, headers, SW_PAYLOAD.encode(), NOW).event_type == "invoice.paid"


def test_standard_webhooks_secret_without_prefix() -> None:
    config = StandardWebhooksScheme(secrets=[SW_SECRET.removeprefix("whsec_")])
    assert verify(config, _sw_headers(_sw_sign()), SW_PAYLOAD.encode(), NOW)


def test_standard_webhooks_text_body_is_not_json() -> None:
    payload = "plain text, not JSON"
    headers = _sw_headers(_sw_sign(payload=payload))
    assert verify(STANDARD, headers, payload.encode(), NOW) == Verified(idempotency_key=SW_ID)


def test_standard_webhooks_binary_body() -> None:
    key = base64.b64decode(SW_SECRET.removeprefix("whsec_"))
    digest = _hmac(key, f"{SW_ID}.{NOW}.".encode() + BINARY_BODY)
    headers = _sw_headers("v1," + base64.b64encode(digest).decode())
    assert verify(STANDARD, headers, BINARY_BODY, NOW) == Verified(idempotency_key=SW_ID)


def test_standard_webhooks_wrong_secret() -> None:
    headers = _sw_headers(_sw_sign(secret=SW_OTHER_SECRET))
    _fails(STANDARD, headers, SW_PAYLOAD.encode(), NOW, "bad_signature")


def test_standard_webhooks_tampered_body() -> None:
    headers = _sw_headers(_sw_sign())
    tampered = SW_PAYLOAD.replace("7", "8").encode()
    _fails(STANDARD, headers, tampered, NOW, "bad_signature")


def test_standard_webhooks_tampered_id() -> None:
    headers = _sw_headers(_sw_sign()) | {"webhook-id": "msg_other"}
    _fails(STANDARD, headers, SW_PAYLOAD.encode(), NOW, "bad_signature")


@pytest.mark.parametrize("name", ["id", "timestamp", "signature"])
def test_standard_webhooks_missing_header(name: str) -> None:
    headers = _sw_headers(_sw_sign())
    del headers[f"webhook-{name}"]
    error = _fails(STANDARD, headers, SW_PAYLOAD.encode(), NOW, "missing_header")
    assert f"webhook-{name}" in error.detail


@pytest.mark.parametrize("delta", [301, -301])
def test_standard_webhooks_stale_and_future(delta: int) -> None:
    headers = _sw_headers(_sw_sign())
    _fails(STANDARD, headers, SW_PAYLOAD.encode(), NOW + delta, "timestamp_outside_tolerance")


def test_standard_webhooks_rotation() -> None:
    """Either secret verifies a two-signature header; either signature matches two secrets."""
    header = _sw_sign(secret=SW_OTHER_SECRET) + " " + _sw_sign(secret=SW_SECRET)
    body = SW_PAYLOAD.encode()
    for secret in (SW_SECRET, SW_OTHER_SECRET):
        config = StandardWebhooksScheme(secrets=[secret])
        assert verify(config, _sw_headers(header), body, NOW).idempotency_key == SW_ID
    both = StandardWebhooksScheme(secrets=[SW_OTHER_SECRET, SW_SECRET])
    assert verify(both, _sw_headers(_sw_sign()), body, NOW)


def test_standard_webhooks_other_versions_are_ignored() -> None:
    header = "v1a,c29tZSBlZDI1NTE5IHNpZ25hdHVyZQ== " + _sw_sign()
    assert verify(STANDARD, _sw_headers(header), SW_PAYLOAD.encode(), NOW)


@pytest.mark.parametrize(
    "headers",
    [
        _sw_headers("v1a,c29tZSBlZDI1NTE5IHNpZ25hdHVyZQ=="),  # no v1
        _sw_headers("v1,not*base64"),
        _sw_headers("v1,AAAA", t=0) | {"webhook-timestamp": "1.7e9"},
    ],
)
def test_standard_webhooks_malformed_header(headers: dict[str, str]) -> None:
    _fails(STANDARD, headers, SW_PAYLOAD.encode(), NOW, "malformed_header")


def test_standard_webhooks_refuses_undecodable_secret() -> None:
    with pytest.raises(ValidationError, match="not whsec_ followed by base64"):
        StandardWebhooksScheme(secrets=["whsec_abcde"])


# --- shopify -------------------------------------------------------------------------------

# shopify.dev, "Verify webhooks": "X-Shopify-Hmac-Sha256" holds the base64-encoded HMAC-SHA256
# of the raw body, keyed with the app's client secret. Shopify publishes no worked example.
SHOPIFY_SECRET = "hush"
SHOPIFY_BODY = b'{"id":1}'
SHOPIFY_SIGNATURE = "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY="
SHOPIFY = ShopifyScheme(secrets=[SHOPIFY_SECRET])


def _shopify_headers(signature: str) -> dict[str, str]:
    return {
        "x-shopify-hmac-sha256": signature,
        "x-shopify-topic": "orders/create",
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }


def _shopify_sign(secret: str, body: bytes) -> str:
    return base64.b64encode(_hmac(secret.encode(), body)).decode()


def test_shopify_vector() -> None:
    assert _shopify_sign(SHOPIFY_SECRET, SHOPIFY_BODY) == SHOPIFY_SIGNATURE
    result = verify(SHOPIFY, _shopify_headers(SHOPIFY_SIGNATURE), SHOPIFY_BODY, NOW)
    assert result == Verified(
        event_type="orders/create", idempotency_key="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    )


def test_shopify_binary_body() -> None:
    headers = _shopify_headers(_shopify_sign(SHOPIFY_SECRET, BINARY_BODY))
    assert verify(SHOPIFY, headers, BINARY_BODY, NOW).event_type == "orders/create"


def test_shopify_wrong_secret() -> None:
    config = ShopifyScheme(secrets=["not hush"])
    _fails(config, _shopify_headers(SHOPIFY_SIGNATURE), SHOPIFY_BODY, NOW, "bad_signature")


def test_shopify_tampered_body() -> None:
    _fails(SHOPIFY, _shopify_headers(SHOPIFY_SIGNATURE), b'{"id":2}', NOW, "bad_signature")


def test_shopify_missing_header() -> None:
    headers = _shopify_headers(SHOPIFY_SIGNATURE)
    del headers["x-shopify-hmac-sha256"]
    _fails(SHOPIFY, headers, SHOPIFY_BODY, NOW, "missing_header")


def test_shopify_malformed_header() -> None:
    headers = _shopify_headers(SHOPIFY_SIGNATURE.rstrip("="))
    _fails(SHOPIFY, headers, SHOPIFY_BODY, NOW, "malformed_header")


@pytest.mark.parametrize("secrets", [["new", SHOPIFY_SECRET], [SHOPIFY_SECRET, "new"]])
def test_shopify_rotated_secrets(secrets: list[str]) -> None:
    config = ShopifyScheme(secrets=secrets)
    assert verify(config, _shopify_headers(SHOPIFY_SIGNATURE), SHOPIFY_BODY, NOW)


# --- slack ---------------------------------------------------------------------------------

# docs.slack.dev / api.slack.com, "Verifying requests from Slack", the worked example.
SLACK_DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_DOC_TIMESTAMP = "1531420618"
SLACK_DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SLACK = SlackScheme(secrets=[SLACK_DOC_SECRET])
SLACK_NOW = int(SLACK_DOC_TIMESTAMP) + 60


def _slack_sign(secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + _hmac(secret.encode(), f"v0:{timestamp}:".encode() + body).hex()


def _slack_headers(signature: str, timestamp: str = SLACK_DOC_TIMESTAMP) -> dict[str, str]:
    return {"x-slack-signature": signature, "x-slack-request-timestamp": timestamp}


def _slack_request(payload: Any, secret: str = SLACK_DOC_SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return _slack_headers(_slack_sign(secret, str(NOW), body), str(NOW)), body


def test_slack_doc_example() -> None:
    """Slack's documented slash-command request: form-encoded, so no event type."""
    assert _slack_sign(SLACK_DOC_SECRET, SLACK_DOC_TIMESTAMP, SLACK_DOC_BODY) == SLACK_DOC_SIGNATURE
    result = verify(SLACK, _slack_headers(SLACK_DOC_SIGNATURE), SLACK_DOC_BODY, SLACK_NOW)
    assert result == Verified()


def test_slack_url_verification_returns_challenge() -> None:
    headers, body = _slack_request(
        {
            "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
            "challenge": "3eZbrw1aBm2r",
            "type": "url_verification",
        }
    )
    assert verify(SLACK, headers, body, NOW) == Verified(challenge={"challenge": "3eZbrw1aBm2r"})


def test_slack_forged_url_verification_gets_no_challenge() -> None:
    headers, body = _slack_request(
        {"challenge": "3eZbrw1aBm2r", "type": "url_verification"}, secret="guess"
    )
    _fails(SLACK, headers, body, NOW, "bad_signature")


def test_slack_url_verification_without_challenge() -> None:
    headers, body = _slack_request({"type": "url_verification"})
    _fails(SLACK, headers, body, NOW, "malformed_body")


def test_slack_event_callback() -> None:
    headers, body = _slack_request(
        {"type": "event_callback", "event_id": "Ev08MFMKH6", "event": {"type": "app_mention"}}
    )
    assert verify(SLACK, headers, body, NOW) == Verified(
        event_type="app_mention", idempotency_key="Ev08MFMKH6"
    )


def test_slack_top_level_type_without_event() -> None:
    headers, body = _slack_request({"type": "app_rate_limited"})
    assert verify(SLACK, headers, body, NOW).event_type == "app_rate_limited"


def test_slack_binary_body() -> None:
    headers = _slack_headers(_slack_sign(SLACK_DOC_SECRET, str(NOW), BINARY_BODY), str(NOW))
    assert verify(SLACK, headers, BINARY_BODY, NOW) == Verified()


def test_slack_wrong_secret() -> None:
    config = SlackScheme(secrets=["8f742231b10e8888abcd99yyyzzz85a6"])
    headers = _slack_headers(SLACK_DOC_SIGNATURE)
    _fails(config, headers, SLACK_DOC_BODY, SLACK_NOW, "bad_signature")


def test_slack_tampered_body() -> None:
    headers = _slack_headers(SLACK_DOC_SIGNATURE)
    _fails(SLACK, headers, SLACK_DOC_BODY + b"&x=1", SLACK_NOW, "bad_signature")


@pytest.mark.parametrize("name", ["x-slack-signature", "x-slack-request-timestamp"])
def test_slack_missing_header(name: str) -> None:
    headers = _slack_headers(SLACK_DOC_SIGNATURE)
    del headers[name]
    _fails(SLACK, headers, SLACK_DOC_BODY, SLACK_NOW, "missing_header")


@pytest.mark.parametrize("delta", [301, -301])
def test_slack_stale_and_future(delta: int) -> None:
    headers = _slack_headers(SLACK_DOC_SIGNATURE)
    now = int(SLACK_DOC_TIMESTAMP) + delta
    _fails(SLACK, headers, SLACK_DOC_BODY, now, "timestamp_outside_tolerance")


def test_slack_malformed_header() -> None:
    headers = _slack_headers(SLACK_DOC_SIGNATURE.removeprefix("v0="))
    _fails(SLACK, headers, SLACK_DOC_BODY, SLACK_NOW, "malformed_header")


@pytest.mark.parametrize("secrets", [["new", SLACK_DOC_SECRET], [SLACK_DOC_SECRET, "new"]])
def test_slack_rotated_secrets(secrets: list[str]) -> None:
    config = SlackScheme(secrets=secrets)
    assert verify(config, _slack_headers(SLACK_DOC_SIGNATURE), SLACK_DOC_BODY, SLACK_NOW)


# --- generic hmac --------------------------------------------------------------------------

HMAC_SECRET = "generic-secret"
HMAC_BODY = b'{"kind": "thing.happened"}'
HMAC = HmacScheme(secrets=[HMAC_SECRET], header="X-Signature")


def test_hmac_defaults_hex_sha256_of_body() -> None:
    headers = {"x-signature": _hmac(HMAC_SECRET.encode(), HMAC_BODY).hex()}
    assert verify(HMAC, headers, HMAC_BODY, NOW) == Verified()


def test_hmac_sha512_base64_with_prefix_and_metadata_headers() -> None:
    config = HmacScheme(
        secrets=[HMAC_SECRET],
        header="X-Sig",
        algorithm="sha512",
        encoding="base64",
        prefix="sha512=",
        event_type_header="X-Event",
        idempotency_header="X-Delivery",
    )
    digest = _hmac(HMAC_SECRET.encode(), HMAC_BODY, "sha512")
    headers = {
        "x-sig": "sha512=" + base64.b64encode(digest).decode(),
        "x-event": "thing.happened",
        "x-delivery": "d-1",
    }
    result = verify(config, headers, HMAC_BODY, NOW)
    assert result == Verified(event_type="thing.happened", idempotency_key="d-1")


def test_hmac_missing_prefix() -> None:
    config = HmacScheme(secrets=[HMAC_SECRET], header="X-Sig", prefix="sha256=")
    headers = {"x-sig": _hmac(HMAC_SECRET.encode(), HMAC_BODY).hex()}
    _fails(config, headers, HMAC_BODY, NOW, "malformed_header")


TIMED = HmacScheme(secrets=[HMAC_SECRET], header="X-Signature", timestamp_header="X-Timestamp")


def _timed_headers(body: bytes, t: int = NOW, separator: str = ".") -> dict[str, str]:
    message = f"{t}{separator}".encode() + body
    return {"x-signature": _hmac(HMAC_SECRET.encode(), message).hex(), "x-timestamp": str(t)}


def test_hmac_timestamped() -> None:
    assert verify(TIMED, _timed_headers(HMAC_BODY), HMAC_BODY, NOW) == Verified()


def test_hmac_timestamp_separator() -> None:
    config = TIMED.model_copy(update={"timestamp_separator": ":"})
    assert verify(config, _timed_headers(HMAC_BODY, separator=":"), HMAC_BODY, NOW)
    _fails(TIMED, _timed_headers(HMAC_BODY, separator=":"), HMAC_BODY, NOW, "bad_signature")


@pytest.mark.parametrize("delta", [301, -301])
def test_hmac_stale_and_future(delta: int) -> None:
    headers = _timed_headers(HMAC_BODY)
    _fails(TIMED, headers, HMAC_BODY, NOW + delta, "timestamp_outside_tolerance")


def test_hmac_missing_timestamp_header() -> None:
    headers = _timed_headers(HMAC_BODY)
    del headers["x-timestamp"]
    _fails(TIMED, headers, HMAC_BODY, NOW, "missing_header")


def test_hmac_binary_body() -> None:
    assert verify(TIMED, _timed_headers(BINARY_BODY), BINARY_BODY, NOW) == Verified()


def test_hmac_wrong_secret() -> None:
    config = HmacScheme(secrets=["other"], header="X-Signature")
    headers = {"x-signature": _hmac(HMAC_SECRET.encode(), HMAC_BODY).hex()}
    _fails(config, headers, HMAC_BODY, NOW, "bad_signature")


def test_hmac_tampered_body() -> None:
    headers = _timed_headers(HMAC_BODY)
    _fails(TIMED, headers, HMAC_BODY + b" ", NOW, "bad_signature")


def test_hmac_missing_header() -> None:
    error = _fails(HMAC, {}, HMAC_BODY, NOW, "missing_header")
    assert "X-Signature" in error.detail


@pytest.mark.parametrize("secrets", [["new", HMAC_SECRET], [HMAC_SECRET, "new"]])
def test_hmac_rotated_secrets(secrets: list[str]) -> None:
    config = HmacScheme(secrets=secrets, header="X-Signature")
    headers = {"x-signature": _hmac(HMAC_SECRET.encode(), HMAC_BODY).hex()}
    assert verify(config, headers, HMAC_BODY, NOW) == Verified()


# --- configuration -------------------------------------------------------------------------

CONFIG = TypeAdapter[VerificationConfig](VerificationConfig)


@pytest.mark.parametrize(
    ("data", "model"),
    [
        ({"scheme": "none"}, NoneScheme),
        ({"scheme": "github", "secrets": ["s"]}, GitHubScheme),
        ({"scheme": "stripe", "secrets": ["s"], "tolerance_s": 60}, StripeScheme),
        ({"scheme": "standard-webhooks", "secrets": [SW_SECRET]}, StandardWebhooksScheme),
        ({"scheme": "shopify", "secrets": ["s"]}, ShopifyScheme),
        ({"scheme": "slack", "secrets": ["s"]}, SlackScheme),
        ({"scheme": "hmac", "secrets": ["s"], "header": "X-Sig"}, HmacScheme),
    ],
)
def test_config_discriminates_on_scheme(data: dict[str, Any], model: type[object]) -> None:
    assert isinstance(CONFIG.validate_python(data), model)


@pytest.mark.parametrize(
    "data",
    [
        {"scheme": "nope"},
        {"scheme": "github", "secrets": []},
        {"scheme": "github", "secrets": [""]},
        {"scheme": "github"},
        {"scheme": "github", "secrets": ["s"], "extra": 1},
        {"scheme": "none", "secrets": ["s"]},
        {"scheme": "hmac", "secrets": ["s"]},
        {"scheme": "stripe", "secrets": ["s"], "tolerance_s": 0},
    ],
)
def test_config_rejects(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CONFIG.validate_python(data)


def test_secrets_do_not_show_in_repr() -> None:
    config = CONFIG.validate_python({"scheme": "slack", "secrets": [SLACK_DOC_SECRET]})
    assert SLACK_DOC_SECRET not in repr(config)
    assert SLACK_DOC_SECRET not in config.model_dump_json()


def test_bad_signature_detail_omits_expected_signature() -> None:
    forged = "sha256=" + "00" * 32
    error = _fails(GITHUB, _github_headers(forged), GITHUB_DOC_BODY, NOW, "bad_signature")
    assert GITHUB_DOC_SIGNATURE.removeprefix("sha256=") not in str(error)
    assert "X-Hub-Signature-256" in error.detail


@pytest.mark.parametrize(
    ("config", "headers", "reason"),
    [
        (GitHubScheme(secrets=["s"]), {}, "missing_header"),
        (GitHubScheme(secrets=["s"]), {"x-hub-signature-256": "md5=00"}, "malformed_header"),
        (GitHubScheme(secrets=["s"]), {"x-hub-signature-256": "sha256=zz"}, "malformed_header"),
        (StripeScheme(secrets=["whsec_x"]), {"stripe-signature": "v1=00"}, "malformed_header"),
        (SlackScheme(secrets=["s"]), {"x-slack-signature": "v0=00"}, "missing_header"),
    ],
)
def test_headers_that_cannot_pass_fail_before_the_body(
    config: VerificationConfig, headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(VerificationError) as info:
        check_headers(config, headers, NOW)
    assert info.value.reason == reason


def test_well_formed_headers_wait_for_the_body() -> None:
    # A wrong signature, a stale timestamp: only the body (and the clock) can say.
    check_headers(GitHubScheme(secrets=["s"]), {"x-hub-signature-256": "sha256=" + "0" * 64}, NOW)
    stripe_headers = {"stripe-signature": f"t={NOW - 10**6},v1=" + "0" * 64}
    check_headers(StripeScheme(secrets=["whsec_x"]), stripe_headers, NOW)
    check_headers(NoneScheme(), {}, NOW)
