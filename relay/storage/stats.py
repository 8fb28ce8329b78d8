"""Per-minute figures for the dashboard's last hour: attempt outcomes and accepted events.

Outcomes are counted by ``record_attempt.lua`` in the same step that records the attempt
(``stats:{minute}``, kept two hours); accepted events need no counter of their own, since the
event index sorts ids by their creation time and can count any minute of it. Events the relay
made itself (operational events, subscription tests) are in that index too, and are taken
out through their sources' own indexes: "accepted" means webhooks that came in.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from relay.domain.models import TEST_SOURCE
from relay.domain.ops import OPS_SOURCE
from relay.storage.codec import lex_range
from relay.storage.keys import Keys

MINUTE_MS = 60_000
# Twice the hour the dashboard shows, so a minute is never read after it expired.
STATS_TTL_MS = 2 * 3_600_000
_OWN_SOURCES = (OPS_SOURCE, TEST_SOURCE)


@dataclass(frozen=True, slots=True)
class MinuteStats:
    minute_ms: int  # the minute's first millisecond
    accepted: int
    succeeded: int
    failed: int  # will retry
    dead: int


class StatsStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def minutes(self, now_ms: int, count: int = 60) -> list[MinuteStats]:
        """The last ``count`` minutes, oldest first; the current minute is the last."""
        current = now_ms // MINUTE_MS
        minutes = range(current - count + 1, current + 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for minute in minutes:
                low, high = lex_range("evt", minute * MINUTE_MS, (minute + 1) * MINUTE_MS - 1)
                for index in (Keys.events, *map(Keys.source_events, _OWN_SOURCES)):
                    pipe.zlexcount(index, low, high)  # type: ignore[no-untyped-call]
                pipe.hmget(Keys.minute_stats(minute), ["succeeded", "failed", "dead"])
            replies = await pipe.execute()
        step = 2 + len(_OWN_SOURCES)
        return [
            MinuteStats(
                minute * MINUTE_MS,
                int(row[0]) - sum(int(n) for n in row[1:-1]),
                *(int(v or 0) for v in row[-1]),
            )
            for minute, row in zip(
                minutes, (replies[i : i + step] for i in range(0, len(replies), step)), strict=True
            )
        ]
