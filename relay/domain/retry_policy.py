"""The retry schedule as a tenacity composition, built once and asked two questions.

The same ``stop`` and ``wait`` strategies drive a tenacity loop and compute when the next
ARQ job should run, so inline retries and deferred ones follow one schedule:

    >>> schedule = Schedule(
    ...     max_attempts=3, max_age_s=60, initial_s=5, exp_base=2, max_wait_s=8, jitter_s=0
    ... )
    >>> policy = RetryPolicy.from_settings(schedule)
    >>> policy.next_delay(attempt_number=1, elapsed_s=0.0), policy.next_delay(2, 0.0)
    (5.0, 8.0)
    >>> policy.next_delay(attempt_number=3, elapsed_s=0.0) is None
    True

The schedule's values come from configuration (``config.settings.RetrySettings``), which
this module only knows by shape: the domain does not depend on how settings are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from tenacity import (
    RetryCallState,
    Retrying,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

# RetryCallState wants a retrying object; ours only carries state for the strategies.
_NO_RETRYING = Retrying()


class RetrySchedule(Protocol):
    """The fields a retry schedule is built from (config's RetrySettings has them)."""

    @property
    def max_attempts(self) -> int: ...
    @property
    def max_age_s(self) -> float: ...
    @property
    def initial_s(self) -> float: ...
    @property
    def exp_base(self) -> float: ...
    @property
    def max_wait_s(self) -> float: ...
    @property
    def jitter_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule the domain assembles itself, such as defaults with a subscription's changes."""

    max_attempts: int
    max_age_s: float
    initial_s: float
    exp_base: float
    max_wait_s: float
    jitter_s: float


class RetryPolicy:
    """When to try again after attempt ``n`` failed, or ``None`` to give up."""

    def __init__(self, stop: stop_base, wait: wait_base, max_wait_s: float) -> None:
        self.stop = stop
        self.wait = wait
        self.max_wait_s = max_wait_s

    @classmethod
    def from_settings(cls, settings: RetrySchedule) -> RetryPolicy:
        return cls(
            stop=stop_after_attempt(settings.max_attempts) | stop_before_delay(settings.max_age_s),
            wait=wait_exponential_jitter(
                multiplier=settings.initial_s,
                max=settings.max_wait_s,
                exp_base=settings.exp_base,
                jitter=settings.jitter_s,
            ),
            max_wait_s=settings.max_wait_s,
        )

    @classmethod
    def single_attempt(cls) -> RetryPolicy:
        """Best-effort deliveries: one try, never another."""
        return cls(stop=stop_after_attempt(1), wait=wait_exponential_jitter(), max_wait_s=0)

    def next_delay(
        self, attempt_number: int, elapsed_s: float, retry_after_s: float | None = None
    ) -> float | None:
        """Seconds until attempt ``attempt_number + 1``; ``None`` when the policy gives up.

        ``elapsed_s`` is the time since the first attempt started. A receiver's
        ``Retry-After`` replaces the computed wait but never exceeds the policy's longest wait,
        and it cannot push the delivery past the policy's age limit.
        """
        state = RetryCallState(retry_object=_NO_RETRYING, fn=None, args=(), kwargs={})
        state.attempt_number = attempt_number
        state.start_time = 0.0
        state.outcome_timestamp = elapsed_s
        delay = float(self.wait(state))
        if retry_after_s is not None:
            delay = min(max(retry_after_s, 0.0), self.max_wait_s)
        state.upcoming_sleep = delay
        if self.stop(state):
            return None
        return delay


def merged(base: RetrySchedule, override: Mapping[str, Any] | None) -> RetrySchedule:
    """A subscription's own retry fields on top of the relay's defaults."""
    if not override:
        return base
    values = {f.name: getattr(base, f.name) for f in fields(Schedule)}
    values.update((k, v) for k, v in override.items() if v is not None)
    return Schedule(**values)
