"""How many lane jobs a worker starts in one poll, so that busy lanes spread over workers.

A lane is one job at a time, and ARQ gives a due job to whichever worker polls first: with
a few busy lanes, the first worker to poll took all of them and kept them until their time
budgets ran out, while the others idled (a 20,000-delivery drain over 4 lanes once went
8,000 to 0). Beside other live workers, a worker starts no more than its fair share of the
lanes with work, counting the lane jobs it runs already; the rest is left for the others'
next poll. It is a soft limit: counts are read at each poll, and a lane whose job is not
taken stays due, so a worker at its share takes it once one of its own jobs ends. Other
jobs (the recovery cron, jobs queued by older versions) are not limited.
"""

from __future__ import annotations


def jobs_to_take(running: int, busy_lanes: int, live_workers: int, read_limit: int) -> int:
    """Lane jobs to start in this poll: up to ``read_limit`` (what a poll reads) alone, else
    no more than ``ceil(busy_lanes / live_workers)`` in all, the ``running`` ones included."""
    if live_workers <= 1:
        return read_limit
    share = -(-max(busy_lanes, 1) // live_workers)
    return max(0, min(read_limit, share - running))
