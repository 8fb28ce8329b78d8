"""The relay's nouns (pure): sources, subscriptions, events, deliveries and attempts.

API input models end in ``In``/``Patch``; the rest are what the store keeps and the API shows.
Secrets live on the stored models and are excluded from every response model.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

from relay.domain import ordering
from relay.domain.filters import FilterField
from relay.domain.headers import HeaderName
from relay.domain.redaction import REDACTED, looks_secret
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


class DeliveryMode(StrEnum):
    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # will retry
    DEAD = "dead"  # gave up


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


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


class RetryOverride(BaseModel):
    """Per-subscription changes to the relay's retry schedule; unset fields keep the default."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(default=None, ge=1, le=100)
    max_age_s: float | None = Field(default=None, gt=0)
    initial_s: float | None = Field(default=None, ge=0)
    exp_base: float | None = Field(default=None, ge=1)
    max_wait_s: float | None = Field(default=None, gt=0)
    jitter_s: float | None = Field(default=None, ge=0)


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


ExtraHeaders = Annotated[dict[HeaderName, str], AfterValidator(_no_reserved_headers)]


def _transform_headers_allowed(transform: Transform) -> Transform:
    clash = sorted(name for name, _ in transform.headers if name.lower() in RESERVED_HEADERS)
    if clash:
        raise ValueError(f"headers set by the relay cannot be templated: {', '.join(clash)}")
    return transform


Shaping = Annotated[TransformField, AfterValidator(_transform_headers_allowed)]
Patterns = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=256)]],
    Field(min_length=1, max_length=64),
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


MaxConcurrency = Annotated[int, Field(ge=1, le=1000)]
RateLimit = Annotated[float, Field(gt=0, le=100_000)]


class SubscriptionFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    sources: Sources = Field(description='Source names, or ["*"] for every source.')
    event_types: Patterns = Field(default_factory=lambda: ["*"])
    mode: DeliveryMode = DeliveryMode.RELIABLE
    enabled: bool = True
    description: str = Field(default="", max_length=1024)
    headers: ExtraHeaders = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0, le=60)
    retry: RetryOverride | None = None
    svix_headers: bool = Field(
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
    ordering: Ordering = Field(default_factory=Ordering)
    filter: FilterField | None = Field(
        default=None, description="Deliver only events whose body and headers match."
    )
    transform: Shaping | None = Field(
        default=None, description="Reshape the JSON body and template headers (JMESPath)."
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
                    "event_types": ["push", "pull_request.*"],
                    "description": "Billing: pushes and pull requests",
                    "headers": {"X-Team": "billing"},
                    "retry": {"max_attempts": 5},
                }
            ]
        },
    )


class SubscriptionPatch(BaseModel):
    """Fields to change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl | None = None
    sources: Sources | None = None
    event_types: Patterns | None = None
    mode: DeliveryMode | None = None
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=1024)
    headers: ExtraHeaders | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=60)
    retry: RetryOverride | None = None
    svix_headers: bool | None = None
    max_concurrency: MaxConcurrency | None = None
    rate_limit: RateLimit | None = None
    ordering: Ordering | None = None
    filter: FilterField | None = None
    transform: Shaping | None = None


class SubscriptionOut(SubscriptionFields):
    id: str
    created_at: int
    updated_at: int
    disabled_reason: str | None = None
    paused: bool = Field(default=False, description="Paused: deliveries wait, none is dropped.")
    previous_secret_expires_at: int | None = Field(
        default=None, description="Until then (ms) deliveries are signed with the old secret too."
    )


SECRET_FIELDS = frozenset({"secret", "previous_secret"})


def public_headers(headers: dict[str, str]) -> dict[str, str]:
    """Extra headers as the API shows them: values of credential-like headers are masked."""
    return {k: REDACTED if looks_secret(k) else v for k, v in headers.items()}


class Subscription(SubscriptionOut):
    """The stored subscription, secrets included: never returned as is."""

    secret: str
    previous_secret: str | None = None

    def public(self) -> SubscriptionOut:
        data = self.model_dump(exclude=set(SECRET_FIELDS))
        data["headers"] = public_headers(data["headers"])
        return SubscriptionOut.model_validate(data)

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


class SubscriptionCreated(SubscriptionOut):
    """Returned once, on create: the only time the signing secret is shown."""

    secret: str


class SecretRotated(BaseModel):
    """Returned once, on rotation: the new secret and until when the old one still signs."""

    id: str
    secret: str
    previous_secret_expires_at: int


# --- events and deliveries -----------------------------------------------------------------


class Event(BaseModel):
    id: str
    source: str
    event_type: str | None
    received_at: int = Field(description="Milliseconds since the Unix epoch.")
    content_type: str
    headers: dict[str, str]
    idempotency_key: str | None
    body_bytes: int
    fanned_out: bool


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


class EventDetail(Event):
    deliveries: list[Delivery]
    skipped: list[Skipped] = Field(
        default_factory=list,
        description="Subscriptions that want this source and type but whose filter did not "
        "match the event (no delivery was made for them).",
    )


class IngestAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"event_id": "evt_01JD3Y9T0W6Y7Q1G8B3C5D7E9F", "status": "accepted"}]
        }
    )

    event_id: str
    status: str = "accepted"
