"""Inbound webhook verification schemes (pure: no I/O).

A source's ``verification`` block chooses a scheme. ``verify`` checks the raw body and
headers before anything is stored and returns what the scheme knows about the event
(its type and idempotency key) or raises :class:`VerificationError`.

    >>> cfg = NoneScheme()
    >>> verify(cfg, {}, b"{}", now=0.0)
    Verified(event_type=None, idempotency_key=None, challenge=None)

Every scheme checks the signature before the timestamp, so ``timestamp_outside_tolerance``
is only ever reported for a request that really came from the sender (a delayed or replayed
one, or a clock that is off), which is the case worth telling an operator about.
"""

from __future__ import annotations

import binascii
import hmac
import re
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from relay.domain.headers import HeaderName
from relay.domain.input_rules import input_range, on_input
from relay.domain.signing import secret_key, signed_content

# The stable codes a VerificationError carries.
MISSING_HEADER = "missing_header"
MALFORMED_HEADER = "malformed_header"
BAD_SIGNATURE = "bad_signature"
TIMESTAMP_OUTSIDE_TOLERANCE = "timestamp_outside_tolerance"
MALFORMED_BODY = "malformed_body"

DEFAULT_TOLERANCE_S = 300

Secrets = Annotated[
    list[Annotated[SecretStr, Field(min_length=1)]],
    Field(min_length=1, description="Any of these may match, so a secret can be rotated."),
]
# Bounded: orjson stores no integer past 64 bits (a 500 before), and no provider signs a
# day-old request.
Tolerance = Annotated[
    int,
    Field(gt=0, description="Seconds a timestamp may be from now, either way."),
    *input_range(1, 86_400),
]


class VerificationError(Exception):
    """The request failed a check; ``reason`` is a stable code, ``detail`` is safe to show."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Verified:
    """What a scheme learned from a request that passed its checks."""

    event_type: str | None = None
    idempotency_key: str | None = None
    # A reply the relay must send itself instead of storing the event (Slack's url_verification).
    challenge: dict[str, str] | None = None


# --- shared checks ---------------------------------------------------------------------------


def _optional_header(headers: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` present with a non-blank value (lookup is case-insensitive)."""
    for name in names:
        value = headers.get(name.lower())
        if value is not None and value.strip():
            return value.strip()
    return None


def _header(headers: Mapping[str, str], *names: str) -> str:
    """Like :func:`_optional_header`, but a missing header fails verification."""
    value = _optional_header(headers, *names)
    if value is None:
        raise VerificationError(MISSING_HEADER, f"header {' or '.join(names)} is missing")
    return value


def _decode(value: str, encoding: Literal["hex", "base64"], header: str) -> bytes:
    """A signature's bytes, so that comparison ignores hex case and base64 padding choices."""
    try:
        if encoding == "hex":
            return binascii.unhexlify(value)
        return binascii.a2b_base64(value, strict_mode=True)
    except ValueError:  # binascii.Error, and non-ASCII input
        raise VerificationError(
            MALFORMED_HEADER, f"{header} does not hold a {encoding} signature"
        ) from None


def _strip_prefix(value: str, prefix: str, header: str) -> str:
    if not value.startswith(prefix):
        raise VerificationError(MALFORMED_HEADER, f"{header} does not start with {prefix!r}")
    return value[len(prefix) :]


def _check_hmac(
    keys: Sequence[bytes],
    message: bytes,
    candidates: Sequence[bytes],
    header: str,
    algorithm: Literal["sha256", "sha512"] = "sha256",
) -> None:
    """Pass if any candidate signature is the HMAC of ``message`` under any key."""
    matched = False
    for key in keys:
        expected = hmac.new(key, message, algorithm).digest()
        for candidate in candidates:
            # Not short-circuited: the time taken says nothing about which pair matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise VerificationError(BAD_SIGNATURE, f"{header} matches none of the configured secrets")


def _timestamp(value: str, header: str) -> int:
    """Whole seconds since the epoch, as every supported sender writes them."""
    # Twelve digits reach the year 33658; a longer "timestamp" is an attack on int().
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        raise VerificationError(MALFORMED_HEADER, f"{header} is not a Unix timestamp")
    return int(value)


def _check_tolerance(timestamp: int, now: float, tolerance_s: int, header: str) -> None:
    # Future timestamps are refused too: a sender's clock far ahead would otherwise let a
    # captured request be replayed for longer than the tolerance.
    if abs(now - timestamp) > tolerance_s:
        raise VerificationError(
            TIMESTAMP_OUTSIDE_TOLERANCE, f"{header} is more than {tolerance_s}s from now"
        )


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is anything else (form data, binary...)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _require_json_object(body: bytes, scheme: str) -> dict[str, Any]:
    parsed = _json_object(body)
    if parsed is None:
        raise VerificationError(MALFORMED_BODY, f"{scheme} body is not a JSON object")
    return parsed


def _str_field(obj: Mapping[str, Any] | None, key: str) -> str | None:
    value = obj.get(key) if obj is not None else None
    return value if isinstance(value, str) else None


# --- schemes ---------------------------------------------------------------------------------


def _scheme_required(schema: dict[str, Any]) -> None:
    # The default lets NoneScheme() be built in code, but a client must name the scheme:
    # it is the discriminator, and the document said it could be left out.
    schema["required"] = sorted({*schema.get("required", []), "scheme"})


class _Scheme(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_scheme_required)

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        """Check one request; raise :class:`VerificationError` if it fails."""


class _SecretScheme(_Scheme):
    secrets: Secrets

    def _keys(self) -> list[bytes]:
        return [secret.get_secret_value().encode() for secret in self.secrets]


class NoneScheme(_Scheme):
    """Explicit opt-out: anything is accepted. For trusted networks only."""

    scheme: Literal["none"] = "none"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        return Verified()


class GitHubScheme(_SecretScheme):
    """GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``.

    The event type is ``X-GitHub-Event``, refined by the payload's ``action``
    (``pull_request.opened``); the idempotency key is ``X-GitHub-Delivery``.
    """

    scheme: Literal["github"] = "github"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        name = "X-Hub-Signature-256"
        signature = _strip_prefix(_header(headers, name), "sha256=", name)
        _check_hmac(self._keys(), body, [_decode(signature, "hex", name)], name)
        event = _optional_header(headers, "X-GitHub-Event")
        # Form-encoded deliveries are not JSON; they simply keep the bare event name.
        action = _str_field(_json_object(body), "action")
        if event is not None and action is not None:
            event = f"{event}.{action}"
        return Verified(
            event_type=event, idempotency_key=_optional_header(headers, "X-GitHub-Delivery")
        )


class StripeScheme(_SecretScheme):
    """Stripe: ``Stripe-Signature: t=<ts>,v1=<hex>[,v1=...]`` over ``"<ts>.<body>"``.

    The key is the whole ``whsec_...`` string (Stripe does not decode it). Event type and
    idempotency key are the event's ``type`` and ``id``.
    """

    scheme: Literal["stripe"] = "stripe"
    tolerance_s: Tolerance = DEFAULT_TOLERANCE_S

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        name = "Stripe-Signature"
        timestamps: list[str] = []
        signatures: list[bytes] = []
        for item in _header(headers, name).split(","):
            key, sep, value = item.strip().partition("=")
            if not sep:
                raise VerificationError(MALFORMED_HEADER, f"{name} has an item without '='")
            if key == "t":
                timestamps.append(value)
            elif key == "v1":
                signatures.append(_decode(value, "hex", name))
            # Other schemes (v0 is Stripe's test-mode legacy) are not ours to check.
        if len(timestamps) != 1:
            raise VerificationError(MALFORMED_HEADER, f"{name} needs exactly one t=")
        if not signatures:
            raise VerificationError(MALFORMED_HEADER, f"{name} has no v1 signature")
        timestamp = _timestamp(timestamps[0], name)
        _check_hmac(self._keys(), f"{timestamp}.".encode() + body, signatures, name)
        _check_tolerance(timestamp, now, self.tolerance_s, name)
        event = _require_json_object(body, "stripe")
        return Verified(
            event_type=_str_field(event, "type"), idempotency_key=_str_field(event, "id")
        )


# whsec_ (optional) and standard base64, padded or not: what the document promises, and
# what a new secret must be (the decoder alone would skip stray characters).
WHSEC_PATTERN = (
    r"^(whsec_)?([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=?|[A-Za-z0-9+/]{2}(==)?)$"
)


def _whsec(secret: SecretStr) -> SecretStr:
    if not re.fullmatch(WHSEC_PATTERN, secret.get_secret_value()):
        raise ValueError("secret is not whsec_ followed by base64")
    return secret


class StandardWebhooksScheme(_SecretScheme):
    """Standard Webhooks (and Svix): ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

    The ``svix-*`` names are accepted too. The signature header is a space-separated list of
    ``v1,<base64>``; any may match any secret. The body need not be JSON.
    """

    scheme: Literal["standard-webhooks"] = "standard-webhooks"
    secrets: Annotated[
        list[
            Annotated[
                SecretStr,
                Field(min_length=1, json_schema_extra={"pattern": WHSEC_PATTERN}),
                on_input(_whsec),
            ]
        ],
        Field(min_length=1, description="Any of these may match, so a secret can be rotated."),
    ]
    tolerance_s: Tolerance = DEFAULT_TOLERANCE_S

    @field_validator("secrets")
    @classmethod
    def _secrets_decode(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        # Refuse the config up front rather than fail every request later.
        for secret in secrets:
            try:
                secret_key(secret.get_secret_value())
            except ValueError:
                raise ValueError("secret is not whsec_ followed by base64") from None
        return secrets

    def _keys(self) -> list[bytes]:
        return [secret_key(secret.get_secret_value()) for secret in self.secrets]

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        msg_id = _header(headers, "webhook-id", "svix-id")
        ts_name = "webhook-timestamp"
        timestamp = _timestamp(_header(headers, ts_name, "svix-timestamp"), ts_name)
        sig_name = "webhook-signature"
        signatures: list[bytes] = []
        for item in _header(headers, sig_name, "svix-signature").split():
            version, _, signature = item.partition(",")
            # Other versions (e.g. v1a, asymmetric) are not ours to check.
            if version == "v1":
                signatures.append(_decode(signature, "base64", sig_name))
        if not signatures:
            raise VerificationError(MALFORMED_HEADER, f"{sig_name} has no v1 signature")
        _check_hmac(self._keys(), signed_content(msg_id, timestamp, body), signatures, sig_name)
        _check_tolerance(timestamp, now, self.tolerance_s, ts_name)
        return Verified(event_type=_str_field(_json_object(body), "type"), idempotency_key=msg_id)


class ShopifyScheme(_SecretScheme):
    """Shopify: ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the body.

    The event type is ``X-Shopify-Topic``; the idempotency key is ``X-Shopify-Webhook-Id``.
    """

    scheme: Literal["shopify"] = "shopify"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        name = "X-Shopify-Hmac-Sha256"
        _check_hmac(self._keys(), body, [_decode(_header(headers, name), "base64", name)], name)
        return Verified(
            event_type=_optional_header(headers, "X-Shopify-Topic"),
            idempotency_key=_optional_header(headers, "X-Shopify-Webhook-Id"),
        )


class SlackScheme(_SecretScheme):
    """Slack: ``X-Slack-Signature: v0=<hex>`` over ``"v0:<X-Slack-Request-Timestamp>:<body>"``.

    A ``url_verification`` request is answered with its challenge instead of being stored.
    The event type is ``event.type`` for Events API callbacks, else the body's ``type``.
    """

    scheme: Literal["slack"] = "slack"
    tolerance_s: Tolerance = DEFAULT_TOLERANCE_S

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        sig_name, ts_name = "X-Slack-Signature", "X-Slack-Request-Timestamp"
        signature = _strip_prefix(_header(headers, sig_name), "v0=", sig_name)
        raw_timestamp = _header(headers, ts_name)
        timestamp = _timestamp(raw_timestamp, ts_name)
        # Slack signs the header exactly as sent, so the raw string goes into the base string.
        message = f"v0:{raw_timestamp}:".encode() + body
        _check_hmac(self._keys(), message, [_decode(signature, "hex", sig_name)], sig_name)
        _check_tolerance(timestamp, now, self.tolerance_s, ts_name)

        # Slash commands and interactivity are form-encoded; only the Events API sends JSON.
        payload = _json_object(body)
        if _str_field(payload, "type") == "url_verification":
            challenge = _str_field(payload, "challenge")
            if challenge is None:
                raise VerificationError(MALFORMED_BODY, "slack url_verification has no challenge")
            return Verified(challenge={"challenge": challenge})
        inner = payload.get("event") if payload is not None else None
        event_type = _str_field(inner, "type") if isinstance(inner, dict) else None
        return Verified(
            event_type=event_type or _str_field(payload, "type"),
            idempotency_key=_str_field(payload, "event_id"),
        )


class HmacScheme(_SecretScheme):
    """Any sender that puts an HMAC of the body in one header.

    The signed payload is the raw body, or, when ``timestamp_header`` is set,
    ``<timestamp><timestamp_separator><body>`` (``"<ts>.<body>"`` by default) with the
    timestamp in whole Unix seconds and checked against ``tolerance_s``. A timestamp the
    signature does not cover would prove nothing, so there is no unsigned-timestamp mode.
    """

    scheme: Literal["hmac"] = "hmac"
    header: HeaderName = Field(description="The header holding the signature.")
    algorithm: Literal["sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field(
        default="", max_length=32, description="Required before the signature, e.g. 'sha256='."
    )
    timestamp_header: HeaderName | None = None
    timestamp_separator: str = Field(default=".", max_length=8)
    tolerance_s: Tolerance = DEFAULT_TOLERANCE_S
    event_type_header: HeaderName | None = None
    idempotency_header: HeaderName | None = None

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        signature = _strip_prefix(_header(headers, self.header), self.prefix, self.header)
        candidate = _decode(signature, self.encoding, self.header)
        timestamp: int | None = None
        message = body
        if self.timestamp_header is not None:
            raw_timestamp = _header(headers, self.timestamp_header)
            timestamp = _timestamp(raw_timestamp, self.timestamp_header)
            message = f"{raw_timestamp}{self.timestamp_separator}".encode() + body
        _check_hmac(self._keys(), message, [candidate], self.header, self.algorithm)
        if timestamp is not None and self.timestamp_header is not None:
            _check_tolerance(timestamp, now, self.tolerance_s, self.timestamp_header)
        return Verified(
            event_type=self._optional(headers, self.event_type_header),
            idempotency_key=self._optional(headers, self.idempotency_header),
        )

    @staticmethod
    def _optional(headers: Mapping[str, str], name: str | None) -> str | None:
        return _optional_header(headers, name) if name is not None else None


VerificationConfig = Annotated[
    NoneScheme
    | GitHubScheme
    | StripeScheme
    | StandardWebhooksScheme
    | ShopifyScheme
    | SlackScheme
    | HmacScheme,
    Field(discriminator="scheme"),
]


def verify(
    config: VerificationConfig, headers: Mapping[str, str], body: bytes, now: float
) -> Verified:
    """Check ``body`` and ``headers`` (lower-case names) against ``config`` at time ``now``."""
    return config.verify(headers, body, now)


# What the headers alone can fail: each scheme reads and parses its headers before it
# looks at the body.
_HEADER_REASONS = frozenset({MISSING_HEADER, MALFORMED_HEADER})


def check_headers(config: VerificationConfig, headers: Mapping[str, str], now: float) -> None:
    """Raise what :func:`verify` would for headers that are missing or malformed, before
    the body is read: such a request fails whatever its body, so buffering it (up to 25 MB)
    would only cost memory.

    Runs the scheme on an empty body and keeps only the header failures; the verdict on the
    signature itself waits for the real body.
    """
    try:
        config.verify(headers, b"", now)
    except VerificationError as exc:
        if exc.reason in _HEADER_REASONS:
            raise
