"""Outbound signatures, checked by the Standard Webhooks and Svix libraries themselves.

Both libraries verify against the wall clock, so these tests sign with the current time.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
import svix.webhooks
from standardwebhooks.webhooks import WebhookVerificationError

from relay.domain.signing import (
    SECRET_PREFIX,
    generate_secret,
    secret_key,
    sign,
    signature_header,
    signed_headers,
)
from relay.domain.verification import StandardWebhooksScheme, verify

# The Standard Webhooks specification's example secret, plus a second one for rotation.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + base64.b64encode(b"another twenty-four byte").decode()
MSG_ID = "msg_2Lh9KRb0pzN4LePd3XmOtIkLaQN"
BODY = b'{"type": "invoice.paid", "data": {"id": 7}}'


def _now() -> int:
    return int(time.time())


def _standard(secret: str) -> standardwebhooks.Webhook:
    return standardwebhooks.Webhook(secret)


def _svix(secret: str) -> svix.webhooks.Webhook:
    return svix.webhooks.Webhook(secret)


def test_sign_matches_the_libraries() -> None:
    ts = 1614265330
    when = datetime.fromtimestamp(ts, UTC)
    ours = sign(SECRET, MSG_ID, ts, BODY)
    assert ours == _standard(SECRET).sign(MSG_ID, when, BODY.decode())
    assert ours == _svix(SECRET).sign(MSG_ID, when, BODY.decode())


def test_sign_spec_vector() -> None:
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_secret_prefix_is_optional() -> None:
    assert secret_key(SECRET) == secret_key(SECRET.removeprefix(SECRET_PREFIX))
    assert sign(SECRET, MSG_ID, 1, BODY) == sign(
        SECRET.removeprefix(SECRET_PREFIX), MSG_ID, 1, BODY
    )


def test_signed_headers_names() -> None:
    headers = signed_headers([SECRET], MSG_ID, 1614265330, BODY)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": sign(SECRET, MSG_ID, 1614265330, BODY),
    }
    with_svix = signed_headers([SECRET], MSG_ID, 1614265330, BODY, svix_names=True)
    assert with_svix == headers | {
        "svix-id": MSG_ID,
        "svix-timestamp": "1614265330",
        "svix-signature": headers["webhook-signature"],
    }


def test_standardwebhooks_accepts_signed_headers() -> None:
    headers = signed_headers([SECRET], MSG_ID, _now(), BODY)
    assert _standard(SECRET).verify(BODY, headers) == {"type": "invoice.paid", "data": {"id": 7}}


def test_svix_accepts_svix_names() -> None:
    headers = signed_headers([SECRET], MSG_ID, _now(), BODY, svix_names=True)
    only_svix = {name: value for name, value in headers.items() if name.startswith("svix-")}
    _svix(SECRET).verify(BODY, only_svix)
    _svix(SECRET).verify(BODY, headers)


@pytest.mark.parametrize("verifier_secret", [SECRET, OTHER_SECRET])
def test_rotation_either_secret_verifies(verifier_secret: str) -> None:
    headers = signed_headers([OTHER_SECRET, SECRET], MSG_ID, _now(), BODY, svix_names=True)
    assert len(headers["webhook-signature"].split(" ")) == 2
    _standard(verifier_secret).verify(BODY, headers)
    _svix(verifier_secret).verify(BODY, headers)


def test_tampered_body_is_rejected_by_the_libraries() -> None:
    headers = signed_headers([SECRET], MSG_ID, _now(), BODY, svix_names=True)
    tampered = BODY.replace(b"7", b"8")
    with pytest.raises(WebhookVerificationError):
        _standard(SECRET).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        _svix(SECRET).verify(tampered, headers)


def test_other_secret_is_rejected_by_the_libraries() -> None:
    headers = signed_headers([SECRET], MSG_ID, _now(), BODY, svix_names=True)
    with pytest.raises(WebhookVerificationError):
        _standard(OTHER_SECRET).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        _svix(OTHER_SECRET).verify(BODY, headers)


def test_generated_secret_works_with_both_libraries() -> None:
    secret = generate_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(secret_key(secret)) == 24
    assert generate_secret() != secret
    headers = signed_headers([secret], MSG_ID, _now(), BODY, svix_names=True)
    _standard(secret).verify(BODY, headers)
    _svix(secret).verify(BODY, headers)


def test_our_verifier_accepts_our_signatures_on_any_bytes() -> None:
    """Signing and the standard-webhooks scheme share one implementation, binary bodies too."""
    body = b"\xff\xfe\x00\x80binary"
    now = 1_700_000_000
    headers = signed_headers([OTHER_SECRET, SECRET], MSG_ID, now, body)
    config = StandardWebhooksScheme(secrets=[SECRET])
    assert verify(config, headers, body, now).idempotency_key == MSG_ID


def test_signature_header_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], MSG_ID, 1, BODY)


def test_undecodable_secret_is_refused() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - binascii's message is not ours to pin
        sign("whsec_abcde", MSG_ID, 1, BODY)
