"""The lane job's states (pure): what a claim or a yield answered, and what the job does next.

A lane job loops: claim (``claim_lane.lua`` answers a :class:`Claimed`), attempt what it got,
and, when nothing more can be claimed now, ask ``yield_lane.lua`` (a :class:`Yielded`) whether
to go on. Every answer of both scripts is in the tables below, with the step it leads to.

    >>> after_claim(Claimed.HOLD, in_flight=False, wait_s=None, budget_left_s=1.0)
    <Step.YIELD: 'yield'>
    >>> after_yield(Yielded.MORE)
    <Step.CLAIM: 'claim'>
"""

from __future__ import annotations

from enum import StrEnum

# A lane whose slots are all taken by other workers is looked at again this often.
FULL_POLL_S = 0.05
# A retry due this soon is waited for in the job rather than by arming a new one: a new job
# waits for ARQ's next poll, and short retries would drift late.
LINGER_S = 0.25


class Claimed(StrEnum):
    """``claim_lane.lua``'s status."""

    OK = "ok"  # deliveries handed out
    EMPTY = "empty"  # nothing due; the next due time says when
    PAUSED = "paused"  # the subscription is paused: resume arms the lane again
    HOLD = "hold"  # the lane is held (Retry-After, 429, breaker open) until the next due time
    RATE = "rate"  # the rate limit's next token comes at the next due time
    FULL = "full"  # every slot is taken (max_concurrency, or the breaker's probes)


class Yielded(StrEnum):
    """``yield_lane.lua``'s status."""

    MORE = "more"  # work is due now and the budget lasts: keep draining
    REARMED = "rearmed"  # a new job is armed for the next due time
    IDLE = "idle"  # nothing left, or paused
    NOT_OWNER = "not_owner"  # another job was armed for this lane meanwhile


class Step(StrEnum):
    CLAIM = "claim"  # claim again now
    WAIT_ATTEMPTS = "wait_attempts"  # wait for an attempt in flight to finish (or wait_s)
    SLEEP = "sleep"  # nothing in flight: sleep wait_s in this job, then claim
    YIELD = "yield"  # ask yield_lane whether to go on
    STOP = "stop"  # the job ends


# With nothing in flight: what each claim status leads to. SLEEP stands only when the wait
# is known and ends within the job's budget; otherwise the job yields.
NOTHING_IN_FLIGHT: dict[Claimed, Step] = {
    Claimed.OK: Step.CLAIM,
    Claimed.EMPTY: Step.SLEEP,
    Claimed.PAUSED: Step.YIELD,
    Claimed.HOLD: Step.YIELD,
    Claimed.RATE: Step.SLEEP,
    Claimed.FULL: Step.SLEEP,
}

AFTER_YIELD: dict[Yielded, Step] = {
    Yielded.MORE: Step.CLAIM,
    Yielded.REARMED: Step.STOP,
    Yielded.IDLE: Step.STOP,
    Yielded.NOT_OWNER: Step.STOP,
}


def wait_s(status: Claimed, due_in_s: float | None) -> float | None:
    """How long to wait in the job before claiming again; None: not worth waiting here.
    ``due_in_s``: seconds to the claim's next due time (None: it gave none)."""
    if status is Claimed.FULL:
        return FULL_POLL_S
    if status in (Claimed.RATE, Claimed.EMPTY) and due_in_s is not None:
        wait = max(0.001, due_in_s)
        return wait if status is Claimed.RATE or wait <= LINGER_S else None
    return None


def after_claim(
    status: Claimed, *, in_flight: bool, wait_s: float | None, budget_left_s: float
) -> Step:
    """The step after a claim answered ``status``."""
    if in_flight:
        return Step.WAIT_ATTEMPTS
    step = NOTHING_IN_FLIGHT[status]
    if step is Step.SLEEP and (wait_s is None or wait_s >= budget_left_s):
        return Step.YIELD
    return step


def after_yield(status: Yielded) -> Step:
    return AFTER_YIELD[status]
