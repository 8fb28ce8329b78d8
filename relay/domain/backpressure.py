"""When a whole lane holds back (pure): a receiver that asks us to slow down, or one that
keeps failing, is given room as a whole instead of each delivery trying on its own clock.

    >>> hold_for(AttemptResult(status_code=429, retry_after_s=30), failures_in_row=1, max_s=60)
    30.0
    >>> hold_for(AttemptResult(status_code=500), failures_in_row=5, max_s=60, base_s=1)
    4.0
"""

from __future__ import annotations

from relay.domain.outcome import AttemptResult

# A receiver saying "slow down" (429) or "not now" (503 with Retry-After) speaks for every
# delivery to it, not just the one it answered.
_SLOW_DOWN = frozenset({429, 503})
# This many failures in a row that reached the receiver make the lane back off as a whole.
FAILURES_BEFORE_BACKOFF = 3


def hold_for(
    result: AttemptResult, failures_in_row: int, max_s: float, base_s: float = 1.0
) -> float | None:
    """Seconds the lane should hand out nothing after this attempt; None: no hold.

    ``failures_in_row`` counts this attempt when it failed. ``max_s`` bounds every hold
    (the retry policy's longest wait).
    """
    if result.status_code in _SLOW_DOWN and result.retry_after_s is not None:
        return float(min(max(result.retry_after_s, 0.0), max_s))
    if result.status_code == 429:
        return float(min(base_s, max_s))
    if not result.reached or (result.status_code is not None and result.status_code < 500):
        return None
    if failures_in_row < FAILURES_BEFORE_BACKOFF:
        return None
    return float(min(base_s * 2 ** (failures_in_row - FAILURES_BEFORE_BACKOFF), max_s))
