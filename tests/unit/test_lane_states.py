"""The lane job's state table (relay.domain.lane_states), with plain values."""

from __future__ import annotations

import re

import pytest

from relay.domain.lane_states import (
    AFTER_YIELD,
    FULL_POLL_S,
    LINGER_S,
    NOTHING_IN_FLIGHT,
    Claimed,
    Step,
    Yielded,
    after_claim,
    after_yield,
    wait_s,
)
from relay.storage.scripts import LUA_DIR


def lua_statuses(script: str) -> set[str]:
    """Every status a script can answer, read from its Lua: the first item of a reply
    (``head[1] = 'x'``, ``head[1], head[2] = 'x', ...``, ``... and 'x' or 'y'``,
    ``return {'x'``)."""
    lua = (LUA_DIR / f"{script}.lua").read_text()
    found = re.findall(r"head\[1\](?:, head\[2\])? = (?:\(.*?\) and )?'(\w+)'(?: or '(\w+)')?"
                       r"|return \{'(\w+)'", lua)  # fmt: skip
    return {word for match in found for word in match if word}


def test_every_status_the_scripts_answer_is_in_the_tables() -> None:
    claimed = lua_statuses("claim_lane")
    assert claimed == {c.value for c in Claimed} == {c.value for c in NOTHING_IN_FLIGHT}
    assert (
        lua_statuses("yield_lane") == {y.value for y in Yielded} == {y.value for y in AFTER_YIELD}
    )


@pytest.mark.parametrize("status", list(Claimed))
def test_with_attempts_in_flight_the_job_waits_for_them(status: Claimed) -> None:
    assert after_claim(status, in_flight=True, wait_s=None, budget_left_s=1) is Step.WAIT_ATTEMPTS


def test_with_nothing_in_flight() -> None:
    assert after_claim(Claimed.OK, in_flight=False, wait_s=None, budget_left_s=1) is Step.CLAIM
    for held in (Claimed.PAUSED, Claimed.HOLD):
        assert after_claim(held, in_flight=False, wait_s=None, budget_left_s=1) is Step.YIELD
    # A wait shorter than the budget left is slept in the job; a longer one yields.
    for waiting in (Claimed.EMPTY, Claimed.RATE, Claimed.FULL):
        assert after_claim(waiting, in_flight=False, wait_s=0.1, budget_left_s=1) is Step.SLEEP
        assert after_claim(waiting, in_flight=False, wait_s=2, budget_left_s=1) is Step.YIELD
        assert after_claim(waiting, in_flight=False, wait_s=None, budget_left_s=1) is Step.YIELD


def test_only_more_goes_on_after_a_yield() -> None:
    assert after_yield(Yielded.MORE) is Step.CLAIM
    assert {after_yield(y) for y in Yielded if y is not Yielded.MORE} == {Step.STOP}


def test_how_long_the_job_waits_in_place() -> None:
    assert wait_s(Claimed.FULL, None) == FULL_POLL_S
    assert wait_s(Claimed.RATE, 3.0) == 3.0  # the next token, however far
    assert wait_s(Claimed.EMPTY, LINGER_S / 2) == LINGER_S / 2
    assert wait_s(Claimed.EMPTY, LINGER_S * 2) is None  # a new job is armed for it instead
    assert wait_s(Claimed.EMPTY, -5) == 0.001
    assert wait_s(Claimed.HOLD, 0.01) is None
