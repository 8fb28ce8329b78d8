"""One validated settings object, read from ``RELAY_*`` environment variables.

>>> Settings(redis_url="redis://127.0.0.1:6379/0").max_header_bytes
16384
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.data_dir import DEFAULT_DATA_DIR  # also where the admin CLI looks
from relay.domain.addresses import AddressGuard
from relay.storage.keys import DEFAULT_QUEUE

# Headers kept with an event besides its content-type. Signature headers are left out on
# purpose: they are verified at ingest and would only be secrets-adjacent noise in storage.
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")

DEFAULT_STORED_HEADERS = (
    "user-agent",
    "x-request-id",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-webhook-id",
    "webhook-id",
    "svix-id",
)


class RetrySettings(BaseModel):
    """The retry schedule: exponential backoff with jitter, bounded by attempts and age.

    The defaults try 10 times over at most 3 days: 5 s, 20 s, 80 s, 5 min, 21 min, 85 min,
    then about 6 h between attempts.
    """

    max_attempts: int = Field(default=10, ge=1, le=100)
    max_age_s: float = Field(default=3 * 24 * 3600, gt=0)
    initial_s: float = Field(default=5.0, ge=0)
    exp_base: float = Field(default=4.0, ge=1)
    max_wait_s: float = Field(default=6 * 3600, gt=0)
    jitter_s: float = Field(default=5.0, ge=0)


class Settings(BaseSettings):
    """Everything the API and the worker read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="RELAY_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    # Redis. Unset means "start an embedded one" for `relay dev`; serve/worker need it set
    # (or RELAY_REDIS_SENTINELS). redis://, rediss://, unix:// or redis+sentinel://.
    redis_url: str | None = None
    # Sentinels to ask for the primary (comma-separated host:port in the environment).
    redis_sentinels: Annotated[tuple[str, ...], NoDecode] = ()
    redis_sentinel_master: str = "mymaster"
    # How long one Redis command may take before the API answers 503 (and the worker
    # reconnects): bounds ingest latency while Redis stalls.
    redis_socket_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # serve/worker wait this long at start for Redis to answer (started together with it),
    # then exit 1 with one line saying what to fix; 0 waits as long as it takes.
    redis_start_timeout_s: float = Field(default=10.0, ge=0, le=3600)
    # Every process reads Redis's maxmemory-policy and clock this often, and tries a small
    # write (is Redis full, or taking writes again?).
    redis_check_interval_s: float = Field(default=5.0, gt=0, le=300)
    data_dir: Path = DEFAULT_DATA_DIR
    queue_name: str = DEFAULT_QUEUE

    # HTTP API.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    admin_token: SecretStr | None = None
    # GitHub caps its payloads at 25 MB, the largest of the common providers; a source may
    # set its own max_body_bytes. Redis refuses a string beyond 512 MB.
    max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1, le=512 * 1024 * 1024)
    # Ingest limits, enforced by relay.api.protocol before the app sees a request. Defaults
    # follow Node (16 KiB of headers, 60 s for them, 300 s for the whole request), nginx
    # (60 s between two reads of the body) and Apache (100 header fields).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    max_header_count: int = Field(default=100, ge=10)
    max_event_type_length: int = Field(default=256, ge=1)
    max_idempotency_key_length: int = Field(default=256, ge=1)
    # The headers get 10 s (a slowloris holds a slot for at most that long per connection
    # it opens); the body 20 s of grace, then at least body_min_rate_bytes_s on average and
    # never 20 s without a byte (Apache's mod_reqtimeout); 300 s for the whole request.
    headers_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=20.0, gt=0)
    body_min_rate_bytes_s: float = Field(default=1024.0, ge=0)
    request_timeout_s: float = Field(default=300.0, gt=0)
    # Connections one API process holds; more are answered 503 and closed at once.
    max_connections: int = Field(default=1000, ge=1)
    # Per client (peer address, IPv6 per /64; behind a trusted proxy, the address its
    # client_ip_header names): connections held and requests in flight, past which 429.
    max_connections_per_client: int = Field(default=100, ge=1)
    max_requests_per_client: int = Field(default=100, ge=1)
    # Reverse proxies (comma-separated CIDRs in the environment) whose client_ip_header is
    # believed; their own connections are not limited per client.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    client_ip_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    # Request body bytes one API process holds while reading them; past it, 503 with
    # Retry-After instead of running out of memory.
    body_buffer_bytes: int = Field(default=128 * 1024 * 1024, ge=1024 * 1024)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=1)
    # Comma-separated in the environment: RELAY_STORED_HEADERS=user-agent,x-github-event
    stored_headers: Annotated[tuple[str, ...], NoDecode] = DEFAULT_STORED_HEADERS

    # Fan-out and recovery.
    fanout_grace_s: float = Field(default=30.0, ge=0)
    recovery_interval_s: int = Field(default=10, ge=1, le=60)
    recovery_batch: int = Field(default=500, ge=1)
    # A `relay listen` whose stream has been gone this long is removed, with its lane (its
    # deliveries waiting there are closed as SubscriptionDeleted).
    listen_grace_s: float = Field(default=600.0, gt=0)

    # Delivery. Subscribers must be at globally routable addresses, or in these networks
    # (comma-separated CIDRs in the environment: RELAY_ALLOWED_PRIVATE_NETWORKS=10.0.0.0/8).
    allowed_private_networks: Annotated[tuple[str, ...], NoDecode] = ()
    delivery_timeout_s: float = Field(default=15.0, gt=0)
    best_effort_timeout_s: float = Field(default=5.0, gt=0)
    response_excerpt_bytes: int = Field(default=1024, ge=0)
    # A subscription whose every attempt has failed for this long is disabled (0: never).
    disable_after_failing_s: float = Field(default=5 * 86_400, ge=0)
    # After a rotation, deliveries carry signatures from both secrets for this long.
    secret_rotation_overlap_s: int = Field(default=24 * 3600, ge=0)
    # Attempts in flight per subscription across all workers, unless it sets max_concurrency.
    # 32, not 16: a receiver that hangs 2 s on 5% of requests at 100/s holds ~13 slots on
    # average, and 16 left its lane queueing (first-try p99 4.5 s; 32 gives 0.06 s).
    max_concurrency_per_subscription: int = Field(default=32, ge=1, le=1000)
    # A lane's job drains it for at most this long before it makes way for other lanes.
    lane_budget_s: float = Field(default=2.0, gt=0, le=60)
    # Events accepted within this many ms of each other are fanned out in one Redis step.
    fanout_batch_window_ms: float = Field(default=2.0, ge=0, le=100)
    retry: RetrySettings = RetrySettings()
    # Operational events: a subscription's backlog (waiting and in flight) or dead letters
    # at or above these are reported, and again once back to half (0: not watched).
    ops_backlog_threshold: int = Field(default=1000, ge=0)
    ops_dead_letter_threshold: int = Field(default=100, ge=0)

    # Retention of events, deliveries and attempts.
    retention_days: float = Field(default=7, gt=0)

    # Worker.
    worker_max_jobs: int = Field(default=100, ge=1)
    # How often an idle worker asks Redis for due jobs: the floor of a reliable delivery's
    # latency (half of it on average), at one cheap ZRANGEBYSCORE per poll.
    worker_poll_delay_s: float = Field(default=0.05, gt=0, le=5)
    # Prometheus endpoint of a worker process (off when unset: `relay dev` serves /metrics).
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    job_timeout_s: int = Field(default=60, ge=5)
    # How long a dashboard sign-in lasts; the admin token is asked for again after that.
    ui_session_ttl_s: int = Field(default=8 * 3600, ge=60, le=30 * 86400)
    # Failed sign-ins (/api, the dashboard) one client address may make at once, and how
    # many a second after that (per API process); past them it gets 429 unheard.
    auth_guess_burst: int = Field(default=20, ge=1)
    auth_guess_per_s: float = Field(default=0.2, gt=0)

    # Tracing (OTEL_* variables switch it on; see relay.observability.tracing): send each
    # attempt's W3C traceparent/tracestate to subscribers. Off, none is sent; while tracing
    # is off, on passes a provider's own traceparent through.
    trace_propagate: bool = True
    # Logging.
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # uvicorn's line per request: `ingest.accepted` already says method, path and status,
    # and a second line per webhook doubled the cost of logging on the hot path.
    access_log: bool = False

    @field_validator(
        "stored_headers", "allowed_private_networks", "redis_sentinels", "trusted_proxies",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _split_headers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(h.strip() for h in value.split(",") if h.strip())
        return value

    @field_validator("stored_headers")
    @classmethod
    def _lower_headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(h.lower() for h in value)

    @field_validator("allowed_private_networks", "trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # a ValueError names the bad one
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_has_scheme(cls, value: str | None) -> str | None:
        if value and value.split("://", 1)[0] not in REDIS_SCHEMES:
            raise ValueError(
                f"must start with {', '.join(s + '://' for s in REDIS_SCHEMES)} "
                "(e.g. redis://localhost:6379/0)"
            )
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_are_host_port(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{address!r} is not host:port (e.g. 10.0.0.5:26379)")
        return value

    @model_validator(mode="after")
    def _events_outlive_their_retries(self) -> Settings:
        # An event that expired while its delivery still had retries left could never be
        # delivered: keep every event at least as long as the retry schedule can run.
        if self.retention_days * 86_400 <= self.retry.max_age_s:
            raise ValueError(
                "retention_days must be longer than retry.max_age_s "
                f"({self.retry.max_age_s:g} s); raise RELAY_RETENTION_DAYS"
            )
        return self

    @model_validator(mode="after")
    def _client_header_has_proxies(self) -> Settings:
        # A client header believed from anyone would let every sender pick its own limits.
        if self.client_ip_header and not self.trusted_proxies:
            raise ValueError(
                "client_ip_header is only believed from trusted proxies; set "
                "RELAY_TRUSTED_PROXIES to your proxies' addresses (CIDRs)"
            )
        return self

    @model_validator(mode="after")
    def _budget_holds_a_body(self) -> Settings:
        # One client holds at most half the budget (relay.api.bodies): the largest body must
        # fit in that half, or it would be refused every time.
        if self.body_buffer_bytes < 2 * self.max_body_bytes:
            raise ValueError(
                "body_buffer_bytes must be at least twice max_body_bytes; raise "
                "RELAY_BODY_BUFFER_BYTES or lower RELAY_MAX_BODY_BYTES"
            )
        return self

    @model_validator(mode="after")
    def _job_outlives_attempt(self) -> Settings:
        # ARQ treats a job timeout as terminal; a lane's job must always outlive its budget
        # plus one HTTP attempt started at its end.
        if self.job_timeout_s <= self.lane_budget_s + self.delivery_timeout_s + 5:
            raise ValueError(
                "job_timeout_s must exceed lane_budget_s + delivery_timeout_s by more than 5 s"
            )
        return self

    @property
    def address_guard(self) -> AddressGuard:
        return AddressGuard.from_cidrs(self.allowed_private_networks)

    @property
    def retention_ms(self) -> int:
        return int(self.retention_days * 86_400_000)

    def require_redis_url(self) -> str:
        if self.redis_sentinels:
            return self.redis_url or f"redis+sentinel:///{self.redis_sentinel_master}"
        if not self.redis_url:
            raise MissingRedis(
                "RELAY_REDIS_URL is not set: point it at Redis (e.g. redis://localhost:6379/0) "
                "or set RELAY_REDIS_SENTINELS; only `relay dev` starts a Redis itself"
            )
        return self.redis_url


class MissingRedis(RuntimeError):
    """Neither RELAY_REDIS_URL nor RELAY_REDIS_SENTINELS says where Redis is."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
