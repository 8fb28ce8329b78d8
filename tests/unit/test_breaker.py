"""The lane's circuit breaker (relay.domain.breaker), with plain values and a given clock."""

from __future__ import annotations

import random

from relay.domain.breaker import (
    CLOSED,
    RULES,
    Breaker,
    BreakerState,
    LaneStep,
    decide,
)
from relay.domain.outcome import AttemptResult

OK = AttemptResult(status_code=200)
FAIL = AttemptResult(status_code=503)
DOWN = AttemptResult(error="ConnectError")
NOW = 1_000_000
BUCKET = RULES.bucket(NOW)


def apply(breaker: Breaker, step: LaneStep) -> Breaker:
    """What storage does with a step (record_attempt.lua), for chains of attempts here."""
    ok, fail = breaker.cur_ok, breaker.cur_fail
    prev_ok, prev_fail, bucket = breaker.prev_ok, breaker.prev_fail, breaker.bucket
    if step.counted:
        if bucket < step.bucket:
            prev_ok, prev_fail = (ok, fail) if bucket == step.bucket - 1 else (0, 0)
            ok, fail, bucket = 0, 0, step.bucket
        ok, fail = ok + (step.counted == "ok"), fail + (step.counted == "fail")
    tripped, trips, hold = breaker.tripped, breaker.trips, breaker.hold_until_ms
    if step.transition == "close":
        return CLOSED
    if step.transition == "open":
        tripped, trips = True, step.trips
    if step.hold_until_ms is not None:
        hold = max(hold, step.hold_until_ms)
    return Breaker(tripped, trips, hold, bucket, ok, fail, prev_ok, prev_fail)


def run(results: list[AttemptResult], start: Breaker = CLOSED, now: int = NOW) -> Breaker:
    breaker = start
    for result in results:
        breaker = apply(breaker, decide(breaker, result, now_ms=now, max_wait_s=60))
    return breaker


def test_a_receiver_failing_a_fifth_of_the_time_never_opens_it() -> None:
    rng = random.Random(7)
    results = [FAIL if rng.random() < 0.2 else OK for _ in range(5_000)]
    breaker = CLOSED
    for i, result in enumerate(results):
        step = decide(breaker, result, now_ms=NOW + i * 10, max_wait_s=60)
        assert step.transition == "", i
        assert step.hold_until_ms is None, i
        breaker = apply(breaker, step)


def test_it_needs_the_minimum_number_of_attempts_before_opening() -> None:
    assert run([FAIL] * (RULES.min_attempts - 1)).state(NOW) is BreakerState.CLOSED
    opened = run([FAIL] * RULES.min_attempts)
    assert opened.state(NOW) is BreakerState.OPEN
    assert opened.hold_until_ms == NOW + int(RULES.first_open_s * 1000)


def test_it_opens_on_the_rate_over_the_window_not_on_a_run() -> None:
    mixed = [OK, FAIL] * RULES.min_attempts
    assert run(mixed).state(NOW) is BreakerState.OPEN  # half of them failed
    mostly_fine = ([OK] * 2 + [FAIL]) * RULES.min_attempts
    assert run(mostly_fine).state(NOW) is BreakerState.CLOSED


def test_failures_out_of_the_window_are_forgotten() -> None:
    old = run([FAIL] * (RULES.min_attempts - 1))
    later = NOW + RULES.window_ms + RULES.bucket_ms
    step = decide(old, FAIL, now_ms=later, max_wait_s=60)
    assert step.transition == ""
    assert old.failure_rate(later) is None


def test_half_open_a_probe_success_closes_it_and_a_failure_opens_it_for_longer() -> None:
    opened = run([FAIL] * RULES.min_attempts)
    after = opened.hold_until_ms
    assert opened.state(after) is BreakerState.HALF_OPEN
    assert decide(opened, OK, now_ms=after, max_wait_s=60).transition == "close"
    again = decide(opened, DOWN, now_ms=after, max_wait_s=60)
    assert (again.transition, again.trips) == ("open", 2)
    assert again.hold_until_ms == after + 2 * int(RULES.first_open_s * 1000)


def test_a_down_receiver_is_probed_at_a_doubling_cadence_bounded_by_the_longest_wait() -> None:
    breaker, now, holds = run([DOWN] * RULES.min_attempts), NOW, []
    for _ in range(12):
        now = breaker.hold_until_ms
        step = decide(breaker, DOWN, now_ms=now, max_wait_s=60)
        assert step.hold_until_ms is not None
        holds.append((step.hold_until_ms - now) / 1000)
        breaker = apply(breaker, step)
    assert holds[:6] == [2, 4, 8, 16, 32, 60]
    assert max(holds) == 60


def test_attempts_finishing_while_open_only_count() -> None:
    opened = run([FAIL] * RULES.min_attempts)
    step = decide(opened, FAIL, now_ms=NOW + 1, max_wait_s=60)
    assert (step.counted, step.transition, step.hold_until_ms) == ("fail", "", None)


def test_retry_after_and_429_hold_the_lane_within_the_longest_wait() -> None:
    slow = decide(CLOSED, AttemptResult(status_code=503, retry_after_s=30), now_ms=NOW,
                  max_wait_s=10)  # fmt: skip
    assert slow.hold_until_ms == NOW + 10_000
    assert slow.hold_reason == "the receiver answered 503 with Retry-After"
    assert decide(CLOSED, AttemptResult(status_code=429), now_ms=NOW, max_wait_s=60) == LaneStep(
        "", BUCKET, hold_until_ms=NOW + 1000, hold_reason="the receiver answered 429"
    )


def test_refusals_and_the_relays_own_failures_say_nothing_of_health() -> None:
    assert decide(CLOSED, AttemptResult(status_code=422), now_ms=NOW, max_wait_s=1).counted == "ok"
    own = AttemptResult(error="BlockedAddress", reached=False)
    assert decide(CLOSED, own, now_ms=NOW, max_wait_s=1).counted == ""
