"""The log sampler (pure): first of each key at once, then one line per interval with the
count of what came since, and never more keys than its bound."""

from __future__ import annotations

from relay.domain.sampling import LogSampler


def test_first_of_each_key_is_logged_then_one_line_per_interval_with_the_count() -> None:
    sampler = LogSampler(interval_s=10)
    assert sampler.seen("a", 0.0) == 1
    assert [sampler.seen("a", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert sampler.seen("b", 5.0) == 1  # another key is not held back by the first
    assert sampler.seen("a", 10.0) == 4  # the three held back, and this one
    assert sampler.seen("a", 11.0) is None


def test_the_keys_kept_are_bounded_oldest_forgotten() -> None:
    sampler = LogSampler(interval_s=10, max_keys=2)
    for key in ("a", "b", "c"):
        assert sampler.seen(key, 0.0) == 1
    assert sampler.seen("a", 1.0) == 1  # forgotten, so seen as new
    assert sampler.seen("c", 1.0) is None
