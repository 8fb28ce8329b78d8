"""Redis's eviction policy (pure): the relay keeps every accepted event in Redis, so Redis
must refuse writes when memory runs out rather than drop keys to make room.

With any other ``maxmemory-policy`` Redis deletes keys of its choosing when it reaches
``maxmemory``: an accepted event's body, a delivery record (left "in flight" for ever), a
source's subscription set (every later event of that source fans out to nobody). With
``noeviction`` it refuses the write instead, and the relay answers 503 until memory
returns.
"""

from __future__ import annotations

REQUIRED_POLICY = "noeviction"


def eviction_problem(policy: str | None) -> str | None:
    """What to tell an operator about ``policy`` (as ``INFO memory`` reports it), or None
    when it keeps every key (or Redis does not say)."""
    if policy is None or policy == REQUIRED_POLICY:
        return None
    return (
        f"Redis's maxmemory-policy is {policy!r}, which deletes keys (accepted events among "
        f"them) when memory runs out: set maxmemory-policy {REQUIRED_POLICY} "
        f"(CONFIG SET maxmemory-policy {REQUIRED_POLICY}, redis.conf, or your provider's "
        "parameter group)"
    )
