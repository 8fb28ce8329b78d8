"""The relay's nouns (pure): sources, subscriptions, events, deliveries and attempts.

API input models end in ``In``/``Patch``; the rest are what the store keeps and the API shows.
Secrets live on the stored models and are excluded from every response model.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PrivateAttr,
    StrictBool,
    StringConstraints,
    model_validator,
)

from relay.domain import ordering
from relay.domain.filters import FilterField
from relay.domain.headers import HeaderName
from relay.domain.input_rules import NUMBER, STORED, input_range, on_input
from relay.domain.matching import check_glob
from relay.domain.redaction import REDACTED, looks_secret, mask_url
from relay.domain.states import DeliveryMode as DeliveryMode
from relay.domain.states import DeliveryStatus as DeliveryStatus
from relay.domain.states import Trigger as Trigger
from relay.domain.tracecontext import TraceContext
from relay.domain.transforms import Transform, TransformField
from relay.domain.verification import NoneScheme, VerificationConfig

SOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
SourceName = Annotated[str, StringConstraints(pattern=SOURCE_NAME_PATTERN)]

# Headers the relay sets on every delivery; a subscription may not override them.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "x-relay-source",
        "x-relay-event-type",
        "x-relay-attempt",
    }
)


# Events the relay makes itself (subscription tests) use a source no real source can be
# named (names start with a letter or digit).
TEST_SOURCE = "_relay"
TEST_EVENT_TYPE = "relay.test"


# --- sources -------------------------------------------------------------------------------


class SourceIn(BaseModel):
    """A named entry point: ``POST /ingest/{name}``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "description": "GitHub organisation webhooks",
                    "event_type_header": "X-GitHub-Event",
                    "idempotency_header": "X-GitHub-Delivery",
                    "verification": {"scheme": "github", "secrets": ["my-github-secret"]},
                }
            ]
        },
    )

    description: str = Field(default="", max_length=1024)
    idempotency_header: HeaderName | None = Field(
        default=None,
        description="Header whose value de-duplicates repeats, e.g. X-GitHub-Delivery.",
    )
    event_type_header: HeaderName | None = Field(
        default=None, description="Header that names the event type, e.g. X-GitHub-Event."
    )
    verification: VerificationConfig = Field(default_factory=NoneScheme)
    # Redis refuses a string beyond 512 MB.
    max_body_bytes: int | None = Field(
        default=None,
        ge=1,
        le=512 * 1024 * 1024,
        description="Largest body accepted for this source (413 beyond); "
        "default RELAY_MAX_BODY_BYTES.",
    )


class Source(SourceIn):
    name: SourceName
    created_at: int
    updated_at: int

    def public(self) -> dict[str, Any]:
        """The source as the API shows it: secrets are write-only, only their count shows."""
        data = self.model_dump(mode="json")
        secrets = data["verification"].pop("secrets", None)
        if secrets is not None:
            data["verification"]["secret_count"] = len(secrets)
        return data


# --- subscriptions -------------------------------------------------------------------------

Wait = Annotated[float, *input_range(0.1, 604_800)]
MaxAge = Annotated[float, *input_range(1, 31_536_000)]
Timeout = Annotated[float, *input_range(0.1, 60)]


class RetryOverride(BaseModel):
    """Per-subscription changes to the relay's retry schedule; unset fields keep the default.
    Waits cannot be zero: 100 attempts in a row at once would only hammer the receiver."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_attempts: Annotated[int, NUMBER] | None = Field(default=None, ge=1, le=100)
    max_age_s: MaxAge | None = Field(
        default=None, description="No attempt starts later than this after the first."
    )
    initial_s: Wait | None = Field(default=None, description="The first wait.")
    exp_base: Annotated[float, NUMBER] | None = Field(
        default=None, ge=1, le=100, description="Each wait is this many times the one before."
    )
    max_wait_s: Wait | None = Field(
        default=None, description="The longest wait between two attempts; also caps Retry-After."
    )
    jitter_s: Annotated[float, NUMBER] | None = Field(
        default=None, ge=0, le=86_400, description="Random seconds added to each wait."
    )


# What HTTP/1.1 allows in a field value that we can send as ASCII: visible characters with
# inner spaces or tabs, nothing at either end.
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$")


def _no_reserved_headers(headers: dict[str, str]) -> dict[str, str]:
    clash = sorted(h for h in headers if h.lower() in RESERVED_HEADERS)
    if clash:
        raise ValueError(f"headers set by the relay cannot be overridden: {', '.join(clash)}")
    bad = sorted(name for name, value in headers.items() if not _HEADER_VALUE.match(value))
    if bad:
        # Name the header, never echo its value: it may be a credential.
        raise ValueError(
            f"header values must be visible ASCII without leading or trailing spaces: "
            f"{', '.join(bad)}"
        )
    return headers


ExtraHeaders = Annotated[
    dict[HeaderName, str],
    AfterValidator(_no_reserved_headers),
    Field(
        description="Extra request headers sent with every delivery. Values are write-only: "
        "answers show them as [REDACTED] unless the header is listed in public_headers."
    ),
]


def _transform_headers_allowed(transform: Transform) -> Transform:
    clash = sorted(name for name, _ in transform.headers if name.lower() in RESERVED_HEADERS)
    if clash:
        raise ValueError(f"headers set by the relay cannot be templated: {', '.join(clash)}")
    return transform


Shaping = Annotated[TransformField, AfterValidator(_transform_headers_allowed)]
Patterns = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=256), on_input(check_glob)]],
    Field(
        min_length=1,
        max_length=64,
        description='Event types to deliver: shell-style globs, case-sensitive ("push", '
        '"pull_request.*", "[!x]*"; "*" takes every event, typed or not).',
    ),
]


def _no_credentials(names: list[str]) -> list[str]:
    secret = sorted(name for name in names if looks_secret(name))
    if secret:
        raise ValueError(f"credential-like headers cannot be public: {', '.join(secret)}")
    return names


PublicHeaders = Annotated[
    list[HeaderName],
    on_input(_no_credentials),
    Field(
        max_length=64,
        description="Names of headers in `headers` whose values answers may show (e.g. "
        "X-Team). Credential-like names (Authorization, *-Key, *-Token, ...) cannot be public.",
    ),
]

# The longest URL the relay keeps (the figure browsers and pydantic use). pydantic checks
# it on the URL as sent; the relay checks the URL as stored, normalised and percent-encoded
# (700 "é" in a path are 4,200 characters), so that every URL it stores it can read back.
MAX_URL_LENGTH = 2083


def _storable_url(url: HttpUrl) -> HttpUrl:
    if len(str(url)) > MAX_URL_LENGTH:
        raise ValueError(
            f"URL is {len(str(url))} characters once normalised (non-ASCII characters are "
            f"percent-encoded); at most {MAX_URL_LENGTH}"
        )
    return url


SubscriberUrl = Annotated[
    HttpUrl,
    AfterValidator(_storable_url),
    Field(
        description="Where deliveries are POSTed (http or https). Answers mask a password "
        "and query values: [REDACTED]."
    ),
]
Sources = Annotated[
    # "*", or the relay's operational events, which "*" does not include (relay.domain.ops).
    list[SourceName | Annotated[str, StringConstraints(pattern=r"^(\*|_relay\.ops)$")]],
    Field(min_length=1, max_length=64),
]


class Ordering(BaseModel):
    """In which order a subscription's deliveries go out."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["none", "fifo"] = Field(
        default="none",
        description="fifo: events with the same key are delivered one at a time, in the order "
        "they were accepted; a delivery waiting for its retry holds back the later ones with "
        "its key, and a dead one lets them go on.",
    )
    key: Annotated[str, AfterValidator(ordering.validate_key)] | None = Field(
        default=None,
        description='"header:<name>" (a stored header) or a JSON path into the body '
        '("$.repository.id"). None: the whole subscription is one FIFO.',
    )


MaxConcurrency = Annotated[int, NUMBER, Field(ge=1, le=1000)]
# At least one delivery a minute: slower would hold a lane for days and more.
RateLimit = Annotated[float, *input_range(1 / 60, 100_000)]


class SubscriptionFields(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    url: SubscriberUrl
    sources: Sources = Field(
        description='Names of existing sources, or ["*"] for every source (and any made later).'
    )
    event_types: Patterns = Field(default_factory=lambda: ["*"])
    mode: DeliveryMode = Field(
        default=DeliveryMode.RELIABLE,
        description="reliable: retried on its lane until the policy gives up; best_effort: "
        "one attempt from the API with a short timeout.",
    )
    enabled: StrictBool = Field(
        default=True, description="False: nothing is delivered (a 410 sets this too)."
    )
    description: str = Field(default="", max_length=1024, description="Free text.")
    headers: ExtraHeaders = Field(default_factory=dict)
    public_headers: PublicHeaders = Field(default_factory=list)
    timeout_s: Timeout | None = Field(
        default=None, description="Deadline of one attempt in seconds (default: the relay's)."
    )
    retry: RetryOverride | None = Field(
        default=None, description="Changes to the relay's retry schedule for this subscription."
    )
    svix_headers: StrictBool = Field(
        default=False,
        description="Also send svix-id/svix-timestamp/svix-signature for Svix's libraries.",
    )
    max_concurrency: MaxConcurrency | None = Field(
        default=None,
        description="Attempts in flight to this subscription across all workers "
        "(default: RELAY_MAX_CONCURRENCY_PER_SUBSCRIPTION).",
    )
    rate_limit: RateLimit | None = Field(
        default=None,
        description="Most deliveries per second to this subscription, across all workers.",
    )
    ordering: Ordering = Field(
        default_factory=Ordering,
        description="Order of delivery: none (default) or FIFO per key.",
    )
    filter: FilterField | None = Field(
        default=None, description="Deliver only events whose body and headers match."
    )
    transform: Shaping | None = Field(
        default=None, description="Reshape the JSON body and template headers (JMESPath)."
    )


def check_one_authorization(url: HttpUrl, headers: dict[str, str]) -> None:
    """Credentials in the URL go as an ``Authorization: Basic`` header: with an
    ``Authorization`` header of its own too, a delivery would carry two, which receivers
    refuse (or the HTTP client does) on every attempt. Raises ``ValueError`` naming both."""
    if (url.username or url.password) and any(h.lower() == "authorization" for h in headers):
        raise ValueError(
            "the URL has credentials (sent as Authorization: Basic) and headers has an "
            "Authorization header: keep one of them"
        )


class SubscriptionIn(SubscriptionFields):
    """What a client sends to create a subscription."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://billing.example.com/hooks/github",
                    "sources": ["github"],
                    "event_types": ["push", "pull_request"],
                    "description": "Billing: pushes and pull requests",
                    "headers": {"X-Team": "billing"},
                    "retry": {"max_attempts": 5},
                }
            ]
        },
    )

    @model_validator(mode="after")
    def _one_authorization(self) -> SubscriptionIn:
        check_one_authorization(self.url, self.headers)
        return self


class SubscriptionPatch(BaseModel):
    """Fields to change; absent fields stay as they are (see the subscription's fields).
    ``null`` resets a field that has no value by default (``timeout_s``, ``retry``, ...)
    and leaves any other as it is."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"enabled": True}, {"event_types": ["push"]}]},
    )

    url: SubscriberUrl | None = None
    sources: Sources | None = None
    event_types: Patterns | None = None
    mode: DeliveryMode | None = None
    enabled: StrictBool | None = None
    description: str | None = Field(default=None, max_length=1024)
    headers: ExtraHeaders | None = None
    public_headers: PublicHeaders | None = None
    timeout_s: Timeout | None = None
    retry: RetryOverride | None = None
    svix_headers: StrictBool | None = None
    max_concurrency: MaxConcurrency | None = None
    rate_limit: RateLimit | None = None
    ordering: Ordering | None = None
    filter: FilterField | None = None
    transform: Shaping | None = None

    def changes(self) -> dict[str, Any]:
        """The fields to set: those sent, without a null for a field that cannot be null."""
        fields = SubscriptionFields.model_fields
        return {
            k: v
            for k, v in self.model_dump(exclude_unset=True).items()
            if v is not None
            or k not in fields
            or fields[k].is_required()
            or fields[k].get_default(call_default_factory=True) is None
        }


class SubscriptionOut(SubscriptionFields):
    """A subscription as answers show it: secrets, header values and URL credentials masked."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "sub_01JD3Y9T0W6Y7Q1G8B3C5D7E9F",
                    "url": "https://billing.example.com/hooks/github?token=[REDACTED]",
                    "sources": ["github"],
                    "event_types": ["push", "pull_request"],
                    "mode": "reliable",
                    "enabled": True,
                    "description": "Billing: pushes and pull requests",
                    "headers": {"Authorization": "[REDACTED]", "X-Team": "billing"},
                    "public_headers": ["X-Team"],
                    "created_at": 1732406400000,
                    "updated_at": 1732406400000,
                }
            ]
        }
    )

    url: str = Field(  # type: ignore[assignment]  # masked: no longer a URL to validate
        description="Where deliveries go; a password and query values show as [REDACTED]."
    )
    id: str = Field(description="sub_ and a time-ordered id.")
    created_at: int = Field(description="Milliseconds since the Unix epoch.")
    updated_at: int = Field(description="Milliseconds since the Unix epoch.")
    disabled_reason: str | None = Field(
        default=None, description="Why the relay disabled it (a 410, failing for too long)."
    )
    paused: bool = Field(default=False, description="Paused: deliveries wait, none is dropped.")
    previous_secret_expires_at: int | None = Field(
        default=None, description="Until then (ms) deliveries are signed with the old secret too."
    )


SECRET_FIELDS = frozenset({"secret", "previous_secret"})


def shown_headers(headers: dict[str, str], public: list[str]) -> dict[str, str]:
    """Extra headers as the API shows them: values are write-only (masked) unless the header
    is listed as public and its name does not look like a credential."""
    shown = {name.lower() for name in public}
    return {
        k: v if k.lower() in shown and not looks_secret(k) else REDACTED for k, v in headers.items()
    }


class Subscription(SubscriptionOut):
    """The stored subscription, secrets included: never returned as is."""

    url: SubscriberUrl  # type: ignore[assignment]  # the answers' copy is masked text
    secret: str
    previous_secret: str | None = None

    def public(self) -> SubscriptionOut:
        data = self.model_dump(mode="json", exclude=set(SECRET_FIELDS))
        data["url"] = mask_url(data["url"])
        data["headers"] = shown_headers(data["headers"], data["public_headers"])
        return SubscriptionOut.model_validate(data, context=STORED)

    def ordering_key(self, headers: dict[str, str], body: bytes) -> str | None:
        """The FIFO key an event gets here; None when deliveries are not ordered."""
        if self.ordering.mode != "fifo":
            return None
        return ordering.key_of(self.ordering.key, headers, body)

    def signing_secrets(self, now_ms: int) -> list[str]:
        """The current secret, and the previous one while its rotation overlap lasts."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now_ms < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]


class UnusableSubscription(BaseModel):
    """A stored subscription this version cannot use: written by an older or buggy version,
    or by hand. Fan-out skips it (and says so), its deliveries die with
    ``UnusableSubscription``; it can be read, listed, paused and deleted (then made
    again). What could be read of it is shown, masked as usual."""

    id: str
    problem: str = Field(description="What is wrong with the stored record (no values).")
    url: str | None = None
    sources: list[str] = Field(
        default_factory=list, description="As stored; empty when they cannot be read."
    )
    enabled: bool
    disabled_reason: str | None = None
    paused: bool
    description: str = ""
    created_at: int | None = None
    updated_at: int | None = None


class SubscriptionSaved(SubscriptionOut):
    """A subscription just saved, with what its maker should know."""

    warnings: list[str] = Field(
        default_factory=list,
        description="E.g. a host that does not resolve yet (deliveries fail until it does).",
    )


class SubscriptionCreated(SubscriptionSaved):
    """Returned once, on create: the only time the signing secret is shown."""

    secret: str


class SecretRotated(BaseModel):
    """Returned once, on rotation: the new secret and until when the old one still signs."""

    id: str
    secret: str
    previous_secret_expires_at: int


# --- events and deliveries -----------------------------------------------------------------


class Event(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "evt_01JD3Y9T0W6Y7Q1G8B3C5D7E9F",
                    "source": "github",
                    "event_type": "pull_request",
                    "received_at": 1732406400000,
                    "content_type": "application/json",
                    "headers": {"x-github-event": "pull_request"},
                    "idempotency_key": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                    "body_bytes": 5120,
                    "fanned_out": True,
                }
            ]
        }
    )

    id: str
    source: str
    event_type: str | None
    received_at: int = Field(description="Milliseconds since the Unix epoch.")
    content_type: str
    headers: dict[str, str]
    idempotency_key: str | None
    body_bytes: int
    fanned_out: bool
    # The W3C trace context kept with the event (relay.observability.tracing): attempts
    # continue it. Not part of the API's answers.
    _trace: TraceContext | None = PrivateAttr(default=None)

    @property
    def trace(self) -> TraceContext | None:
        # Read from pydantic's private store directly: `self._trace` goes through
        # BaseModel.__getattr__, 5 µs on every attempt even while tracing is off.
        private = self.__pydantic_private__
        return private.get("_trace") if private else None


class Attempt(BaseModel):
    number: int
    trigger: Trigger
    started_at: int
    duration_ms: float
    status_code: int | None
    error: str | None
    error_message: str | None
    response_excerpt: str
    outcome: DeliveryStatus
    next_attempt_at: int | None
    transform_version: str | None = Field(
        default=None, description="The subscription's transform that shaped what was sent."
    )


class Delivery(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "dlv_01JD3Y9T0X2K4M6N8P0R2S4T6V",
                    "event_id": "evt_01JD3Y9T0W6Y7Q1G8B3C5D7E9F",
                    "subscription_id": "sub_01JD3Y9T0W6Y7Q1G8B3C5D7E9F",
                    "mode": "reliable",
                    "status": "failed",
                    "attempts": 2,
                    "created_at": 1732406400000,
                    "updated_at": 1732406425000,
                    "next_attempt_at": 1732406505000,
                    "last_status_code": 503,
                    "last_error": None,
                }
            ]
        }
    )

    id: str
    event_id: str
    subscription_id: str
    mode: DeliveryMode
    status: DeliveryStatus
    attempts: int
    created_at: int
    updated_at: int
    next_attempt_at: int | None
    last_status_code: int | None
    last_error: str | None


class DeliveryDetail(Delivery):
    attempt_log: list[Attempt]


class Skipped(BaseModel):
    subscription_id: str
    failed: str = Field(description="The condition of the subscription's filter that failed.")


class Reason(StrEnum):
    EVENT_TYPE = "event_type"  # its event_types match none of the event's type
    FILTER = "filter"  # its filter did not match the event
    DISABLED = "disabled"
    DELETED = "deleted"  # deleted before its delivery was sent
    UNUSABLE = "unusable"  # a stored record this version cannot read
    CREATED_AFTER = "created_after"  # made after the event arrived
    CHANGED_AFTER = "changed_after"  # wants the event now; changed since it arrived
    NOT_FANNED_OUT = "not_fanned_out"  # the event waits for fan-out


class Decided(StrEnum):
    AT_FAN_OUT = "at_fan_out"  # recorded when the event was fanned out
    NOW = "now"  # worked out at read time, against the current subscriptions


class NotDelivered(BaseModel):
    subscription_id: str
    reason: Reason = Field(
        description="event_type, filter, disabled, deleted, unusable, created_after, "
        "changed_after or not_fanned_out."
    )
    detail: str = Field(description="The reason in words, with what it was decided on.")
    decided: Decided = Field(
        description="at_fan_out: recorded when the event was fanned out (filters); now: "
        "worked out for this answer against the subscriptions as they are now."
    )


NOT_DELIVERED = (
    "Every subscription of the event's source that got no delivery of it, and why (see "
    "`decided`: filters are recorded at fan-out, the other reasons are worked out against "
    "the subscriptions as they are now)."
)


class EventDetail(Event):
    deliveries: list[Delivery]
    skipped: list[Skipped] = Field(
        default_factory=list,
        description="Subscriptions that want this source and type but whose filter did not "
        "match the event (no delivery was made for them).",
    )
    not_delivered: list[NotDelivered] = Field(default_factory=list, description=NOT_DELIVERED)


class IngestAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"event_id": "evt_01JD3Y9T0W6Y7Q1G8B3C5D7E9F", "status": "accepted"}]
        }
    )

    event_id: str
    status: str = "accepted"
