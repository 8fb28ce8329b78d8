from __future__ import annotations

import pytest

from relay.domain.ids import id_time_ms, new_id


def test_ids_sort_by_time_and_carry_it() -> None:
    a = new_id("evt", now_ms=1_700_000_000_000)
    b = new_id("evt", now_ms=1_700_000_000_001)
    assert a < b
    assert id_time_ms(a) == 1_700_000_000_000
    assert a.startswith("evt_")
    assert len(a) == 30


def test_ids_are_unique_within_a_millisecond() -> None:
    assert len({new_id("dlv", now_ms=5) for _ in range(10_000)}) == 10_000


def test_ids_take_their_time_from_the_one_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("relay.domain.clock.now_ms", lambda: 1_700_000_000_000)
    assert id_time_ms(new_id("evt")) == 1_700_000_000_000


def test_ids_made_in_one_millisecond_keep_their_order() -> None:
    ids = [new_id("dlv", now_ms=1_000) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000
