"""When a whole lane holds back (pure): a circuit breaker per lane, and a receiver's own
"slow down".

A receiver that fails now and then keeps its throughput: each failed delivery retries on
its own schedule. Only when a large share of the recent attempts failed (``open_rate`` of
at least ``min_attempts`` in the last ``window_ms``) does the breaker *open*: the lane
hands out nothing for a while (doubling with each trip, up to the retry policy's longest
wait). Then it is *half-open*: at most ``probes`` deliveries go out at a time; the first
that succeeds *closes* it, one that fails opens it again for longer. A receiver that asks
for room (429, or a 5xx with ``Retry-After``) gets it as a hold of the whole lane, as
before, bounded by the same longest wait.

The recent window is two buckets of ``window_ms / 2`` (this one and the one before), kept
in the lane's state; storage counts into them and applies the step :func:`decide` returns,
so the rule itself lives here only.

    >>> closed = Breaker()
    >>> decide(closed, AttemptResult(status_code=503), now_ms=0, max_wait_s=60).transition
    ''
    >>> busy = Breaker(cur_ok=10, cur_fail=9)
    >>> decide(busy, AttemptResult(status_code=503), now_ms=0, max_wait_s=60).transition
    'open'
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from relay.domain.outcome import AttemptResult


@dataclass(frozen=True, slots=True)
class BreakerRules:
    window_ms: int = 30_000
    min_attempts: int = 20
    open_rate: float = 0.5
    probes: int = 3
    first_open_s: float = 1.0

    @property
    def bucket_ms(self) -> int:
        return max(1, self.window_ms // 2)

    def bucket(self, now_ms: int) -> int:
        return now_ms // self.bucket_ms


RULES = BreakerRules()


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Breaker:
    """The lane's breaker as stored: whether it tripped, how many times in a row, until when
    the lane holds, and the outcomes counted in the current bucket and the one before."""

    tripped: bool = False
    trips: int = 0
    hold_until_ms: int = 0
    bucket: int = -1
    cur_ok: int = 0
    cur_fail: int = 0
    prev_ok: int = 0
    prev_fail: int = 0

    def state(self, now_ms: int) -> BreakerState:
        if not self.tripped:
            return BreakerState.CLOSED
        return BreakerState.OPEN if self.hold_until_ms > now_ms else BreakerState.HALF_OPEN

    def counts(self, now_ms: int, rules: BreakerRules = RULES) -> tuple[int, int]:
        """(attempts, failures) in the recent window as of ``now_ms``."""
        now_bucket = rules.bucket(now_ms)
        if self.bucket == now_bucket:
            return (
                self.cur_ok + self.cur_fail + self.prev_ok + self.prev_fail,
                self.cur_fail + self.prev_fail,
            )
        if self.bucket == now_bucket - 1 or self.bucket < 0:
            return self.cur_ok + self.cur_fail, self.cur_fail
        return 0, 0

    def failure_rate(self, now_ms: int, rules: BreakerRules = RULES) -> float | None:
        """Share of recent attempts that failed; None without any."""
        total, failed = self.counts(now_ms, rules)
        return failed / total if total else None


CLOSED = Breaker()

Counted = Literal["ok", "fail", ""]
Transition = Literal["open", "close", ""]


@dataclass(frozen=True, slots=True)
class LaneStep:
    """What one attempt does to its lane: the outcome counted in the window (in
    ``bucket``), a breaker transition (``trips`` after it), and a hold of the whole lane."""

    counted: Counted = ""
    bucket: int = 0
    transition: Transition = ""
    trips: int = 0
    hold_until_ms: int | None = None
    hold_reason: str = ""


NOTHING = LaneStep()


# A receiver saying "slow down" (429) or "not now" (503 with Retry-After) speaks for every
# delivery to it, not just the one it answered.
_SLOW_DOWN = frozenset({429, 503})


def _counted(result: AttemptResult) -> Counted:
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return "ok"
    if not result.reached or code == 429:
        return ""
    if code is None or code >= 500:
        return "fail"
    # A 4xx is the receiver refusing this one delivery: it says it is up.
    return "ok"


def _slow_down(result: AttemptResult, max_wait_s: float, rules: BreakerRules) -> float | None:
    if result.status_code in _SLOW_DOWN and result.retry_after_s is not None:
        return min(max(result.retry_after_s, 0.0), max_wait_s)
    if result.status_code == 429:
        return min(rules.first_open_s, max_wait_s)
    return None


def decide(
    breaker: Breaker,
    result: AttemptResult,
    *,
    now_ms: int,
    max_wait_s: float,
    rules: BreakerRules = RULES,
) -> LaneStep:
    """The lane's step after one attempt, given the breaker as the attempt's claim saw it."""
    counted = _counted(result)
    bucket = rules.bucket(now_ms)
    slow = _slow_down(result, max_wait_s, rules)
    if slow is not None:
        reason = f"the receiver answered {result.status_code}"
        if result.retry_after_s is not None:
            reason += " with Retry-After"
        return LaneStep(counted, bucket, hold_until_ms=now_ms + int(slow * 1000),
                        hold_reason=reason)  # fmt: skip
    state = breaker.state(now_ms)
    if counted == "ok" and state is BreakerState.HALF_OPEN:
        return LaneStep(counted, bucket, transition="close")
    if counted != "fail":
        return LaneStep(counted, bucket)
    if state is BreakerState.HALF_OPEN:
        return _open(counted, bucket, breaker.trips + 1, now_ms, max_wait_s, rules,
                     "a probe delivery failed")  # fmt: skip
    if state is BreakerState.CLOSED:
        total, failed = breaker.counts(now_ms, rules)
        total, failed = total + 1, failed + 1
        if total >= rules.min_attempts and failed / total >= rules.open_rate:
            return _open(counted, bucket, 1, now_ms, max_wait_s, rules,
                         f"{failed} of the last {total} attempts failed")  # fmt: skip
    # Open: attempts that were in flight when it tripped only count.
    return LaneStep(counted, bucket)


def _open(
    counted: Counted,
    bucket: int,
    trips: int,
    now_ms: int,
    max_wait_s: float,
    rules: BreakerRules,
    why: str,
) -> LaneStep:
    hold_s = min(rules.first_open_s * 2 ** min(trips - 1, 30), max_wait_s)
    return LaneStep(counted, bucket, "open", trips, now_ms + int(hold_s * 1000),
                    f"circuit breaker open: {why}")  # fmt: skip
