from __future__ import annotations

import pytest

from config.settings import RetrySettings
from relay.domain.retry_policy import RetryPolicy, merged

DEFAULT = RetryPolicy.from_settings(RetrySettings(jitter_s=0))


def test_default_schedule_grows_from_5s_to_6h() -> None:
    waits = [DEFAULT.next_delay(n, elapsed_s=0) for n in range(1, 10)]
    assert waits == [5, 20, 80, 320, 1280, 5120, 20480, 21600, 21600]
    assert DEFAULT.next_delay(10, elapsed_s=0) is None  # 10 attempts, then give up
    assert sum(w for w in waits if w) < 3 * 24 * 3600


def test_age_limit_stops_before_the_next_attempt_would_pass_it() -> None:
    policy = RetryPolicy.from_settings(RetrySettings(max_age_s=100, jitter_s=0))
    assert policy.next_delay(2, elapsed_s=70) == 20
    assert policy.next_delay(2, elapsed_s=85) is None


def test_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy.from_settings(RetrySettings(jitter_s=2))
    delays = {policy.next_delay(1, elapsed_s=0) for _ in range(50)}
    assert all(d is not None and 5 <= d <= 7 for d in delays)
    assert len(delays) > 1


@pytest.mark.parametrize(("retry_after", "expected"), [(30, 30), (0, 0), (10**6, 21600)])
def test_retry_after_replaces_the_wait_within_the_max(retry_after: float, expected: float) -> None:
    assert DEFAULT.next_delay(1, elapsed_s=0, retry_after_s=retry_after) == expected


def test_retry_after_cannot_outlive_the_age_limit() -> None:
    policy = RetryPolicy.from_settings(RetrySettings(max_age_s=60, jitter_s=0))
    assert policy.next_delay(1, elapsed_s=0, retry_after_s=120) is None


def test_single_attempt_never_retries() -> None:
    assert RetryPolicy.single_attempt().next_delay(1, elapsed_s=0) is None


def test_override_keeps_unset_defaults() -> None:
    base = RetrySettings()
    custom = merged(base, {"max_attempts": 3, "initial_s": None})
    assert custom.max_attempts == 3
    assert custom.initial_s == base.initial_s
    assert merged(base, None) is base
