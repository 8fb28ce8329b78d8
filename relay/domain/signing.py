"""Outbound signing in the Standard Webhooks format (pure: no I/O).

A delivery carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``; the
signature is ``v1,`` + base64 of HMAC-SHA256 over ``"<id>.<timestamp>.<body>"`` keyed with
the base64-decoded part of the ``whsec_`` secret. This module is the one place that knows
the format: the inbound ``standard-webhooks`` verification scheme reuses :func:`secret_key`
and :func:`signed_content`.

    >>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the specification's example
    >>> sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

# A marker on the front of secrets, not a secret itself.
SECRET_PREFIX = "whsec_"  # noqa: S105
SIGNATURE_VERSION = "v1"


def generate_secret() -> str:
    """A new subscription secret: ``whsec_`` + base64 of 24 random bytes (as Svix issues them)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret (the prefix is optional).

    Raises ``ValueError`` when the remainder is not base64 or decodes to nothing.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    # Same leniency as the standardwebhooks and svix libraries (extra padding is ignored,
    # so unpadded secrets work): a secret they accept must work here too.
    key = base64.b64decode(encoded + "==")
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The bytes a Standard Webhooks signature covers: ``<id>.<timestamp>.<body>``."""
    # The body stays raw bytes: it may not be UTF-8, and re-encoding would change what is signed.
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` under ``secret``."""
    digest = hmac.new(
        secret_key(secret), signed_content(msg_id, timestamp, body), hashlib.sha256
    ).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated.

    During rotation pass the new and the previous secret, so a receiver holding either accepts.
    """
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def signed_headers(
    secrets: Sequence[str],
    msg_id: str,
    timestamp: int,
    body: bytes,
    svix_names: bool = False,
) -> dict[str, str]:
    """The headers that authenticate a delivery (lower-case names).

    With ``svix_names`` the same values are repeated under ``svix-*`` names for receivers
    that use the Svix libraries' older header names.
    """
    values = {
        "id": msg_id,
        "timestamp": str(timestamp),
        "signature": signature_header(secrets, msg_id, timestamp, body),
    }
    headers = {f"webhook-{name}": value for name, value in values.items()}
    if svix_names:
        headers.update({f"svix-{name}": value for name, value in values.items()})
    return headers
