"""The fair share of lanes a worker takes beside others (relay.domain.sharing)."""

from __future__ import annotations

import pytest

from relay.domain.sharing import jobs_to_take


@pytest.mark.parametrize(
    ("running", "busy", "live", "expected"),
    [
        (0, 4, 1, 5),  # alone: as many as a poll reads
        (7, 4, 1, 5),
        (0, 4, 0, 5),  # no heartbeat seen yet (its own included): as if alone
        (0, 4, 2, 2),  # four busy lanes, two workers: two each
        (1, 4, 2, 1),
        (2, 4, 2, 0),  # at its share: the rest waits for the other worker
        (2, 5, 2, 1),  # a fifth lane: ceil(5 / 2) = 3
        (0, 1, 3, 1),  # one lane, three workers: someone takes it
        (0, 0, 2, 1),  # nothing counted yet (a cron job, a lane just armed): one
        (0, 40, 2, 5),  # a share above what a poll reads
        (30, 40, 2, 0),
    ],
)
def test_a_worker_takes_its_share_beside_others(
    running: int, busy: int, live: int, expected: int
) -> None:
    assert jobs_to_take(running, busy, live, read_limit=5) == expected
