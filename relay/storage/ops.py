"""Operational events: what a Lua step needs to write them (``lua/lib/ops.lua``), and the
threshold watch over backlogs and dead letters.

A step that may report something (an attempt that may kill its delivery or disable its
subscription, a threshold pass) is handed an :class:`OpsContext`: event ids made in advance
and the time, so the events are written in the same atomic step as the change they report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from relay.domain.ids import new_id
from relay.storage.codec import dumps
from relay.storage.keys import PREFIX, Keys
from relay.storage.scripts import OpsEviction, OpsThresholds, Scripts


@dataclass(frozen=True, slots=True)
class OpsContext:
    source: str
    types: tuple[str, ...]  # the event types the script may emit, in the order it knows
    ids: tuple[str, ...]
    at: int
    expire_at: int

    @staticmethod
    def make(source: str, types: tuple[str, ...], now_ms: int, retention_ms: int) -> OpsContext:
        """Room for events of these types, made at ``now_ms``."""
        ids = tuple(new_id("evt", now_ms) for _ in types)
        return OpsContext(source, types, ids, now_ms, now_ms + retention_ms)

    def encode(self) -> bytes:
        iso = datetime.fromtimestamp(self.at / 1000, UTC).isoformat(timespec="milliseconds")
        return dumps(
            {
                "source": self.source,
                "types": list(self.types),
                "ids": list(self.ids),
                "at": self.at,
                "iso": iso.replace("+00:00", "Z"),
                "expire_at": self.expire_at,
            }
        )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Counts at which a subscription's backlog and dead letters are reported (0: never), and
    the marks at or below which they count as recovered."""

    backlog: int
    backlog_recovered: int
    dead_letters: int
    dead_letters_recovered: int


class OpsStore:
    def __init__(self, redis: Redis, scripts: Scripts, retention_ms: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._retention_ms = retention_ms

    async def watch_thresholds(
        self,
        sub_ids: Sequence[str],
        limits: Thresholds,
        source: str,
        types: tuple[str, str, str, str],
        now_ms: int,
    ) -> list[str]:
        """Report subscriptions whose backlog or dead letters crossed a threshold, or
        recovered, as operational events of ``source`` (``types``: backlog exceeded and
        recovered, dead letters exceeded and recovered). Returns the events' ids."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for sub_id in sub_ids:
                pipe.zcard(Keys.lane(sub_id))
                pipe.zcard(Keys.lane(sub_id, "flight"))
                pipe.zcard(Keys.sub_dead(sub_id))
            pipe.hkeys(Keys.ops_alerts)
            *counts, raised = await pipe.execute()
        flagged = {field.decode().rsplit(":", 1)[0] for field in raised}
        # Only where something may change: the script decides, atomically with its flag.
        candidates = [
            sub_id
            for n, sub_id in enumerate(sub_ids)
            if sub_id in flagged
            or 0 < limits.backlog <= counts[3 * n] + counts[3 * n + 1]
            or 0 < limits.dead_letters <= counts[3 * n + 2]
        ]
        replies = await asyncio.gather(
            *(
                self._scripts.run(
                    OpsThresholds(
                        lane_key=Keys.lane(sub_id),
                        flight_key=Keys.lane(sub_id, "flight"),
                        sub_dead_key=Keys.sub_dead(sub_id),
                        alerts_key=Keys.ops_alerts,
                        sub_key=Keys.sub(sub_id),
                        prefix=PREFIX,
                        sub_id=sub_id,
                        ops=OpsContext.make(source, types, now_ms, self._retention_ms).encode(),
                        backlog_high=limits.backlog,
                        backlog_low=limits.backlog_recovered,
                        dead_high=limits.dead_letters,
                        dead_low=limits.dead_letters_recovered,
                    )
                )
                for sub_id in candidates
            )
        )
        return [i.decode() for reply in replies for i in reply]

    async def report_eviction_policy(
        self, policy: str, required: str, source: str, types: tuple[str, str], now_ms: int
    ) -> list[str]:
        """Report ``policy`` if it is not ``required`` and was not reported yet, or its
        return to ``required`` (``types``: unsafe, restored). Returns the events' ids."""
        reply = await self._scripts.run(
            OpsEviction(
                alerts_key=Keys.ops_alerts,
                prefix=PREFIX,
                ops=OpsContext.make(source, types, now_ms, self._retention_ms).encode(),
                policy=policy,
                required=required,
            )
        )
        return [i.decode() for i in reply]
