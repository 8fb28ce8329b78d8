"""An event for 10,000 subscriptions is fanned out in chunks: no Lua call carries more than
``CHUNK_ROWS`` deliveries (read back from Redis's SLOWLOG, which records every command's
arguments), and every subscription gets exactly one delivery."""

from __future__ import annotations

import hashlib
import re

import httpx
import redis.asyncio as aioredis

from relay.delivery.fanout import CHUNK_ROWS
from relay.storage import Store
from relay.storage.keys import Keys
from relay.storage.scripts import source
from tests.conftest import create_source, get, ingest
from tests.storage.helpers import deliveries_by_subscription, many_subscriptions

N = 10_000
# EVALSHA, its sha, numkeys, 5 KEYS, 6 fixed ARGV, then per event 'E', id, 4 counts/cursors.
_FIXED_ARGS, _ROW_ARGS = 1 + 1 + 1 + 5 + 6 + 6, 7
_MORE = re.compile(rb"\.\.\. \((\d+) more arguments\)$")


def argument_count(command: bytes) -> int:
    # SLOWLOG keeps 32 arguments; the 32nd then says how many more there were.
    more = _MORE.search(command)
    return 31 + int(more[1]) if more else len(command.split())


async def test_a_fan_out_to_10000_subscriptions_goes_in_bounded_chunks_exactly_once(
    api: httpx.AsyncClient, redis: aioredis.Redis, store: Store
) -> None:
    await create_source(api)
    sub_ids = await many_subscriptions(store, N, "http://127.0.0.1:9", ["github"])
    old = await redis.config_get("slowlog-*")
    # Commands a script runs are logged too: 100 us leaves out those (a few us each) and
    # keeps every fan-out call (~10 us per delivery it makes).
    await redis.config_set("slowlog-log-slower-than", 100)
    await redis.config_set("slowlog-max-len", 100_000)
    await redis.slowlog_reset()
    try:
        event_id = await ingest(api)  # returns once the fan-out (a background task) is done
        logged = await redis.slowlog_get(100_000)
    finally:
        for name, value in old.items():
            await redis.config_set(name, value)

    sha = hashlib.sha1(source("fanout").encode()).hexdigest().encode()  # noqa: S324 - Redis's script id
    calls = [e["command"] for e in logged if e["command"].startswith(b"EVALSHA " + sha)]
    rows = [(argument_count(c) - _FIXED_ARGS) / _ROW_ARGS for c in calls]
    assert len(calls) >= N / CHUNK_ROWS
    assert max(rows) <= CHUNK_ROWS
    assert sum(rows) == N

    got = await deliveries_by_subscription(redis, event_id)
    assert set(got) == sub_ids
    assert set(got.values()) == {1}
    # Done: out of the unfanned index, its cursor gone.
    assert await redis.zscore(Keys.unfanned, event_id) is None
    assert await redis.exists(Keys.event_fanout_cursor(event_id)) == 0
    detail = await get(api, f"/api/events/{event_id}")
    assert len(detail["deliveries"]) == N
    assert detail["not_delivered"] == []
