"""The disable-after-failing rule, without Redis or sleeps."""

from __future__ import annotations

from relay.domain.failing import NO_CHANGE, FailingUpdate, describe, judge


def test_a_success_resets_the_clock() -> None:
    assert judge(succeeded=True, counts=False, clock_ms=5, now_ms=10, limit_ms=1) == FailingUpdate(
        "reset"
    )


def test_the_first_failure_starts_the_clock() -> None:
    got = judge(succeeded=False, counts=True, clock_ms=None, now_ms=1_000, limit_ms=500)
    assert got == FailingUpdate("count", 1_000, disable=False)


def test_failing_for_the_whole_limit_disables() -> None:
    assert (
        judge(succeeded=False, counts=True, clock_ms=1_000, now_ms=1_499, limit_ms=500).disable
        is False
    )
    assert judge(succeeded=False, counts=True, clock_ms=1_000, now_ms=1_500, limit_ms=500).disable


def test_failures_that_did_not_reach_the_subscriber_or_no_limit_change_nothing() -> None:
    assert judge(succeeded=False, counts=False, clock_ms=0, now_ms=10**9, limit_ms=1) == NO_CHANGE
    assert judge(succeeded=False, counts=True, clock_ms=0, now_ms=10**9, limit_ms=0) == NO_CHANGE


def test_the_reason_names_the_limit() -> None:
    assert describe(5 * 86_400_000) == "every attempt failed for 5 days"
    assert describe(300) == "every attempt failed for 0.3 s"
    assert describe(90 * 60_000) == "every attempt failed for 1.5 h"
