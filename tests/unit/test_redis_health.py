"""The outage log: one line when Redis goes away, one when it is back, whatever the calls."""

from __future__ import annotations

import pytest
from redis.exceptions import OutOfMemoryError
from structlog.testing import capture_logs

from config.settings import Settings
from relay.delivery import connection
from relay.delivery.connection import (
    OUT_OF_MEMORY,
    RedisHealth,
    redacted_target,
    sentinel_target,
)
from relay.domain.eviction import eviction_problem


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(connection.time, "monotonic", fake.monotonic)
    return fake


def test_an_outage_is_logged_once_and_its_end_once(clock: Clock) -> None:
    health = RedisHealth("redis://r:6379/0")
    with capture_logs() as logs:
        health.ok()
        for _ in range(5):
            health.failed(ConnectionError("refused"))
            clock.now += 0.3
            health.ok()  # a reconnect that a stalled Redis's kernel accepted: not the end
        assert health.steady_for_s() == 0.0
        clock.now += 1.0
        health.ok()
        health.ok()
    assert [(e["event"], e.get("down_s")) for e in logs] == [
        ("redis.unavailable", None),
        ("redis.recovered", 2.5),
    ]
    assert logs[0]["redis"] == "redis://r:6379/0"
    assert logs[1]["failed_calls"] == 5
    clock.now += 7
    assert health.steady_for_s() == 7


def test_sentinel_targets_from_a_url_or_the_settings() -> None:
    url = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380/relay/2"
    target = sentinel_target(Settings(redis_url=url))
    assert target is not None
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380))
    assert (target.master, target.db, target.password) == ("relay", 2, "s3cret")
    given = Settings(redis_sentinels="a:26379,b:26379", redis_sentinel_master="main")  # type: ignore[arg-type]
    assert sentinel_target(given) == connection.SentinelTarget((("a", 26379), ("b", 26379)), "main")
    assert sentinel_target(Settings(redis_url="redis://r:6379/0")) is None
    # What the logs say about where Redis is never carries a password.
    assert "s3cret" not in redacted_target(Settings(redis_url=url))
    assert redacted_target(Settings(redis_url="redis://u:pw@r:6379/0")) == "redis://r:6379/0"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"redis_url": "localhost:6379"}, "must start with redis://"),
        ({"redis_sentinels": "10.0.0.1"}, "is not host:port"),
    ],
)
def test_settings_refuse_a_redis_address_they_cannot_use(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Settings(**env)  # type: ignore[arg-type]


def test_a_full_redis_is_an_outage_that_only_a_write_ends(clock: Clock) -> None:
    """Reads go on while a full Redis refuses writes: they must not end the outage."""
    health = RedisHealth("redis://r:6379/0")
    with capture_logs() as logs:
        health.failed(OutOfMemoryError("command not allowed when used memory > 'maxmemory'"))
        clock.now += 5
        health.ok()
        assert health.cause == OUT_OF_MEMORY
        health.failed(ConnectionError("reset"))  # still full until a write is taken
        assert health.cause == OUT_OF_MEMORY
        clock.now += 2
        health.wrote()
    assert health.cause is None
    assert [(e["event"], e["cause"]) for e in logs] == [
        ("redis.unavailable", OUT_OF_MEMORY),
        ("redis.recovered", OUT_OF_MEMORY),
    ]


def test_the_eviction_policy_reports_its_changes_only() -> None:
    health = RedisHealth()
    assert not health.set_evicting(None)
    assert health.set_evicting("allkeys-lru")
    assert not health.set_evicting("allkeys-lru")
    assert health.set_evicting("volatile-lru")
    assert health.set_evicting(None)


def test_the_deadline_is_on_redis_clock_less_a_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection.time, "time", lambda: 1000.0)
    health = RedisHealth()
    assert health.redis_deadline_ms(2.0) == 0  # Redis's clock not read yet: no deadline
    health.clock_offset_ms, health.clock_error_ms = -30_000, 1
    # 2 s after now on Redis's clock (30 s behind ours), less a tenth and the error.
    assert health.redis_deadline_ms(2.0) == 1_000_000 - 30_000 + 2_000 - 200 - 1
    assert health.redis_deadline_ms(0.1) == 1_000_000 - 30_000 + 100 - 20 - 1


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-ttl"])
def test_every_policy_but_noeviction_is_a_problem_that_says_what_to_set(policy: str) -> None:
    problem = eviction_problem(policy)
    assert problem is not None
    assert f"maxmemory-policy is {policy!r}" in problem
    assert "set maxmemory-policy noeviction" in problem
    assert eviction_problem("noeviction") is None
    assert eviction_problem(None) is None  # Redis does not say: nothing to refuse on
