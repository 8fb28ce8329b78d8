from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.settings import RetrySettings, Settings


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_RETRY__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RELAY_STORED_HEADERS", "User-Agent, X-Custom")
    monkeypatch.setenv("RELAY_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("RELAY_ADMIN_TOKEN", "tok-9f8e7d")
    settings = Settings()
    assert settings.retry.max_attempts == 3
    assert settings.stored_headers == ("user-agent", "x-custom")
    assert settings.max_body_bytes == 2048
    assert settings.admin_token is not None
    assert "tok-9f8e7d" not in repr(settings)  # a SecretStr never prints its value


def test_events_must_outlive_their_retry_schedule() -> None:
    with pytest.raises(ValidationError, match="RELAY_RETENTION_DAYS"):
        Settings(retention_days=2)  # the default schedule runs up to 3 days
    assert Settings(retention_days=1, retry=RetrySettings(max_age_s=3600)).retention_days == 1


def test_a_job_must_outlive_one_attempt() -> None:
    with pytest.raises(ValidationError, match="job_timeout_s"):
        Settings(job_timeout_s=20, delivery_timeout_s=15)


def test_serve_and_worker_need_a_redis_url() -> None:
    with pytest.raises(RuntimeError, match="RELAY_REDIS_URL"):
        Settings().require_redis_url()


def test_a_subscriptions_schedule_is_cut_to_the_retention_period() -> None:
    from relay.delivery.attempt import Policies
    from relay.domain.models import DeliveryMode, Subscription

    sub = Subscription(
        id="sub_1", secret="whsec_x", created_at=1, updated_at=1, url="http://x.test/",
        sources=["a"], retry={"max_age_s": 30 * 86_400, "jitter_s": 0},
    )  # fmt: skip
    policy = Policies(Settings()).for_delivery(DeliveryMode.RELIABLE, sub)
    assert policy.next_delay(1, elapsed_s=5 * 86_400) == 5
    assert policy.next_delay(1, elapsed_s=7 * 86_400) is None  # 30 days asked, 7 kept


def test_ingest_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from relay.api.protocol import HttpLimits
    from relay.domain.clients import ClientIdentity

    assert Settings().max_body_bytes == 25 * 1024 * 1024  # GitHub's cap
    assert HttpLimits.from_settings(Settings()) == HttpLimits()  # the documented defaults
    for name, value in {
        "MAX_HEADER_BYTES": "8192",
        "MAX_HEADER_COUNT": "50",
        "HEADERS_TIMEOUT_S": "10",
        "BODY_TIMEOUT_S": "5",
        "REQUEST_TIMEOUT_S": "30",
        "MAX_CONNECTIONS": "200",
        "BODY_MIN_RATE_BYTES_S": "500",
        "MAX_CONNECTIONS_PER_CLIENT": "20",
        "MAX_REQUESTS_PER_CLIENT": "30",
        "TRUSTED_PROXIES": "10.0.0.0/8",
        "CLIENT_IP_HEADER": "X-Real-IP",
    }.items():
        monkeypatch.setenv(f"RELAY_{name}", value)
    limits = HttpLimits.from_settings(Settings())
    assert limits == HttpLimits(
        8192, 50, 10, 5, 500, 30, 200, 20, 30,
        ClientIdentity.from_settings(["10.0.0.0/8"], "x-real-ip"),
    )  # fmt: skip
    with pytest.raises(ValidationError, match="max_header_bytes"):
        Settings(max_header_bytes=100)  # a bound below any real request's headers


def test_the_limits_reach_every_process_of_serve_workers_n() -> None:
    # uvicorn pickles its config into each worker process it spawns: the protocol and its
    # limits must come through (a class made at run time would not).
    import pickle

    import uvicorn

    from relay.api.protocol import ClientCounts, HttpLimits, LimitedHttpProtocol, server_options

    settings = Settings(max_header_bytes=4096, max_connections=7)
    config = uvicorn.Config("relay.api.app:serve_app", factory=True, **server_options(settings))
    http = pickle.loads(pickle.dumps(config)).http  # noqa: S301 - our own bytes, as uvicorn does
    assert http.func is LimitedHttpProtocol
    assert http.keywords["limits"] == HttpLimits.from_settings(settings)
    assert http.keywords["clients"] == ClientCounts()  # each process counts its own
    assert http.keywords["limits"].max_connections == 7


def test_the_body_budget_holds_the_largest_body_twice() -> None:
    # One client may hold half of it (relay.api.bodies): the largest body must fit there.
    with pytest.raises(ValidationError, match="RELAY_BODY_BUFFER_BYTES"):
        Settings(max_body_bytes=100 * 1024 * 1024)
    assert Settings(max_body_bytes=1024, body_buffer_bytes=1024 * 1024).body_buffer_bytes
