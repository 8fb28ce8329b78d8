"""When a subscription that keeps failing is disabled (pure), as Svix does.

A subscription is disabled once every attempt that reached it has failed for ``limit_ms``.
The failing clock starts at the first failure, is reset by a success, and lapses after a
quiet gap as long as the limit (storage keeps it under a TTL of ``limit_ms``, refreshed by
each failure): one failure now says nothing about one six days ago.

    >>> judge(succeeded=False, counts=True, clock_ms=None, now_ms=1_000, limit_ms=500)
    FailingUpdate(action='count', since_ms=1000, disable=False)
    >>> judge(succeeded=False, counts=True, clock_ms=1_000, now_ms=1_600, limit_ms=500)
    FailingUpdate(action='count', since_ms=1000, disable=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FailingAction = Literal["reset", "count", ""]


@dataclass(frozen=True, slots=True)
class FailingUpdate:
    """What one attempt does to the failing clock: reset it, count a failure, or nothing."""

    action: FailingAction
    since_ms: int = 0  # the clock's start, when a failure counts
    disable: bool = False


NO_CHANGE = FailingUpdate("")


def judge(
    *, succeeded: bool, counts: bool, clock_ms: int | None, now_ms: int, limit_ms: int
) -> FailingUpdate:
    """The clock's change after an attempt.

    ``counts``: the attempt reached the subscriber (the relay's own failures, such as a
    blocked address, say nothing of its health). ``clock_ms``: the clock as it was before
    the attempt (None: not running). ``limit_ms`` 0 disables nothing.
    """
    if succeeded:
        return FailingUpdate("reset")
    if not counts or limit_ms <= 0:
        return NO_CHANGE
    since = now_ms if clock_ms is None else clock_ms
    return FailingUpdate("count", since, now_ms - since >= limit_ms)


def describe(limit_ms: int) -> str:
    """The reason a subscription disabled by this rule shows."""
    for unit, size in (("days", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if limit_ms >= size:
            return f"every attempt failed for {limit_ms / size:g} {unit}"
    return f"every attempt failed for {limit_ms / 1000:g} s"
