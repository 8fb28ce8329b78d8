"""Each Lua script and its call class name the same KEYS and ARGV, in the same order."""

from __future__ import annotations

import re

import pytest

from relay.storage import scripts
from relay.storage.scripts import CALLS, LUA_DIR, ScriptCall

_NAMED = re.compile(r"^local ([\w, ]+) = ((?:(?:KEYS|ARGV)\[\d+\](?:, )?)+)$", re.M)


def declared(script: str) -> dict[str, list[str]]:
    """The names a script gives its KEYS and ARGV on its first lines, checked in order."""
    found: dict[str, list[str]] = {"KEYS": [], "ARGV": []}
    for names, refs in _NAMED.findall((LUA_DIR / f"{script}.lua").read_text()):
        for i, (name, ref) in enumerate(
            zip(names.split(", "), refs.split(", "), strict=True), start=1
        ):
            kind, n = ref[:4], int(ref[5:-1])
            assert n == len(found[kind]) + 1, f"{script}: {name} is {ref}, expected #{i}"
            found[kind].append(name)
    return found


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.SCRIPT)
def test_script_and_call_name_the_same_keys_and_argv(call: type[ScriptCall]) -> None:
    names = declared(call.SCRIPT)
    assert names["KEYS"] == list(call.KEYS)
    assert names["ARGV"] == list(call.ARGV)


def test_every_script_has_a_call_class() -> None:
    files = {p.stem for p in LUA_DIR.glob("*.lua")}
    assert files == {c.SCRIPT for c in CALLS}


def test_includes_put_shared_lua_first() -> None:
    source = scripts.source("record_attempt")
    assert source.index("local function set_subscription_state") < source.index(
        "disable_subscription(sub_key"
    )


def test_a_mismatch_is_caught() -> None:
    # The check above must be able to fail: a call that swaps two names does not match.
    names = declared("claim_lane")
    swapped = ("flight_key", "lane_key", "state_key", "sub_key", "failing_key")
    assert names["KEYS"] != list(swapped)


def test_installed_packages_carry_every_script() -> None:
    # The scripts are read from disk at run time; a wheel without them fails at first use.
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["relay.storage"]
    package = LUA_DIR.parent
    shipped = {p for g in globs for p in package.glob(g)}
    assert set(LUA_DIR.rglob("*.lua")) <= shipped


async def test_calls_in_one_turn_share_a_round_trip_but_not_their_errors(redis) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from redis.exceptions import ResponseError

    from relay.storage.scripts import ForgetEmptyIndexes, Scripts

    scripts = Scripts(redis)
    await redis.sadd("reg", "empty", "full", "text")
    await redis.zadd("full", {"x": 0})
    await redis.set("text", "not a sorted set")
    calls = [
        ForgetEmptyIndexes(registry_key="reg", candidates=["empty"]),
        ForgetEmptyIndexes(registry_key="reg", candidates=["text"]),  # WRONGTYPE inside
        ForgetEmptyIndexes(registry_key="reg", candidates=["full"]),
    ]
    before = int((await redis.info("stats"))["total_connections_received"])
    results = await asyncio.gather(*(scripts.run(c) for c in calls), return_exceptions=True)
    assert results[0] == 1
    assert isinstance(results[1], ResponseError)
    assert results[2] == 0
    assert await redis.smembers("reg") == {b"full", b"text"}
    # One pipeline on the pool's connection: no extra connections were opened for the batch.
    assert int((await redis.info("stats"))["total_connections_received"]) - before <= 1


async def _script_commands(redis) -> int:  # type: ignore[no-untyped-def]
    """SCRIPT commands the server has run (Redis 7 counts subcommands apart, 6 does not)."""
    stats = await redis.info("commandstats")
    names = ("cmdstat_script", "cmdstat_script|exists", "cmdstat_script|load")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in names)


async def test_a_batch_is_one_round_trip_and_survives_a_script_flush(redis) -> None:  # type: ignore[no-untyped-def]
    """No SCRIPT EXISTS before each batch (redis-py's pipelines ask it every time), and a
    Redis that lost its scripts (a restart, SCRIPT FLUSH) gets them again without an error."""
    import asyncio

    from relay.storage.scripts import ForgetEmptyIndexes, Scripts

    scripts = Scripts(redis)
    await redis.sadd("reg", "a", "b", "c")
    calls = [ForgetEmptyIndexes(registry_key="reg", candidates=[name]) for name in "abc"]
    await redis.script_flush()
    assert await asyncio.gather(*(scripts.run(c) for c in calls)) == [1, 1, 1]
    assert await redis.smembers("reg") == set()

    await redis.sadd("reg", "a", "b")
    before = await _script_commands(redis)
    assert await asyncio.gather(*(scripts.run(c) for c in calls[:2])) == [1, 1]
    assert await _script_commands(redis) == before
