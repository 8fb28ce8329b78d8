"""Where a delivery goes after an attempt, without Redis."""

from __future__ import annotations

from relay.domain.models import DeliveryStatus
from relay.domain.outcome import AttemptResult
from relay.domain.transitions import Transition, after_attempt


def test_success() -> None:
    assert after_attempt(AttemptResult(status_code=204), lambda: 1.0) == Transition(
        DeliveryStatus.SUCCEEDED
    )


def test_retryable_failure_waits_as_the_policy_says() -> None:
    got = after_attempt(AttemptResult(status_code=503), lambda: 2.5)
    assert got == Transition(DeliveryStatus.FAILED, 2.5)
    assert after_attempt(AttemptResult(error="ConnectError"), lambda: 1.0).retry_in == 1.0


def test_policy_giving_up_or_no_policy_is_dead() -> None:
    assert after_attempt(AttemptResult(status_code=503), lambda: None).status is DeliveryStatus.DEAD
    assert after_attempt(AttemptResult(status_code=503), None).status is DeliveryStatus.DEAD


def test_permanent_failures_never_ask_the_policy() -> None:
    def never() -> float:
        raise AssertionError("asked")

    assert after_attempt(AttemptResult(status_code=422), never).status is DeliveryStatus.DEAD
    assert after_attempt(AttemptResult(permanent=True), never).status is DeliveryStatus.DEAD


def test_gone_is_dead_and_disables() -> None:
    got = after_attempt(AttemptResult(status_code=410), lambda: 1.0)
    assert got == Transition(DeliveryStatus.DEAD, disable_subscription=True)
