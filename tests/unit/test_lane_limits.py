"""A lane's effective limits, resolved in Python only (relay.domain.lane_limits)."""

from __future__ import annotations

import re

from relay.domain.lane_limits import LaneLimits, resolve
from relay.domain.models import Subscription
from relay.storage.deliveries import FIELDS
from relay.storage.scripts import LUA_DIR


def sub(**fields: object) -> Subscription:
    base: dict[str, object] = {"id": "sub_1", "url": "https://example.com/hook",
                               "sources": ["github"], "secret": "whsec_" + "a" * 32,
                               "created_at": 1, "updated_at": 7}  # fmt: skip
    base.update(fields)
    return Subscription.model_validate(base)


def test_a_subscription_without_limits_gets_the_relays_defaults() -> None:
    assert resolve(sub(), default_concurrency=16) == LaneLimits(16, 0.0, revision=7)
    assert resolve(None, default_concurrency=4).max_concurrency == 4


def test_its_own_limits_win() -> None:
    got = resolve(sub(max_concurrency=2, rate_limit=50), default_concurrency=16)
    assert (got.max_concurrency, got.rate_limit) == (2, 50.0)


def test_the_claim_script_reads_no_limit_from_the_subscriptions_json() -> None:
    lua = (LUA_DIR / "claim_lane.lua").read_text()
    assert not re.search(r"cfg\.\w+", lua), "claim_lane.lua reads a field of the config"


def test_python_and_lua_list_the_same_delivery_fields_in_the_same_order() -> None:
    lua = (LUA_DIR / "lib" / "lanes.lua").read_text()
    found = re.search(r"local DELIVERY_FIELDS = \{(.*?)\}", lua, re.S)
    assert found is not None
    assert tuple(re.findall(r"'(\w+)'", found.group(1))) == FIELDS
