"""Wall-clock time in the units the store uses (one seam for tests that move time), and how
a time is written for people and clients."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    """``2026-11-24T18:10:03.123Z``: RFC 3339, UTC, to the millisecond (as Svix and Stripe
    answer). Integer arithmetic: ``ms / 1000`` as a float can come out a millisecond short.

    >>> rfc3339(1_764_007_803_123)
    '2025-11-24T18:10:03.123Z'
    """
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"
