"""A lane's effective limits (pure): resolved once per subscription revision, in Python only.

The claim script gets them as numbers; it never reads them from the subscription's JSON,
so a renamed field cannot silently fall back to a default there (or switch rate limiting
off).

    >>> resolve(None, default_concurrency=16)
    LaneLimits(max_concurrency=16, rate_limit=0.0, probes=3, revision=-1)
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.domain.breaker import RULES
from relay.domain.models import Subscription


@dataclass(frozen=True, slots=True)
class LaneLimits:
    max_concurrency: int  # attempts in flight across all workers
    rate_limit: float = 0.0  # attempts started per second; 0: no limit
    probes: int = RULES.probes  # in flight at most while the breaker is half-open
    revision: int = -1  # the subscription's updated_at they were resolved from (-1: none)


def resolve(sub: Subscription | None, *, default_concurrency: int) -> LaneLimits:
    """The limits of a subscription's lane (the relay's defaults where it sets none)."""
    if sub is None:
        return LaneLimits(default_concurrency)
    return LaneLimits(
        max_concurrency=sub.max_concurrency or default_concurrency,
        rate_limit=float(sub.rate_limit or 0),
        revision=sub.updated_at,
    )
