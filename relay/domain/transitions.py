"""Where a delivery goes after an attempt (pure): succeeded, failed (another try is due) or
dead.

    >>> from relay.domain.outcome import AttemptResult
    >>> after_attempt(AttemptResult(status_code=200), next_delay=None).status
    <DeliveryStatus.SUCCEEDED: 'succeeded'>
    >>> after_attempt(AttemptResult(status_code=503), next_delay=lambda: 5.0).retry_in
    5.0
    >>> after_attempt(AttemptResult(status_code=503), next_delay=lambda: None).status
    <DeliveryStatus.DEAD: 'dead'>
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from relay.domain.models import DeliveryStatus
from relay.domain.outcome import AttemptResult, Verdict, classify


@dataclass(frozen=True, slots=True)
class Transition:
    status: DeliveryStatus
    retry_in: float | None = None  # seconds until the next attempt, when FAILED
    disable_subscription: bool = False  # the receiver said 410 Gone


def after_attempt(
    result: AttemptResult, next_delay: Callable[[], float | None] | None
) -> Transition:
    """The delivery's next state. ``next_delay`` asks the retry policy for the wait before
    another attempt (None: it gives up); pass None when no retry is possible at all (the
    subscription is gone or disabled)."""
    verdict = classify(result)
    if verdict.verdict is Verdict.SUCCESS:
        return Transition(DeliveryStatus.SUCCEEDED)
    retry_in = next_delay() if verdict.verdict is Verdict.RETRY and next_delay else None
    if retry_in is None:
        return Transition(DeliveryStatus.DEAD, disable_subscription=verdict.disable_subscription)
    return Transition(DeliveryStatus.FAILED, retry_in, verdict.disable_subscription)
