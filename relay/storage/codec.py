"""How values cross into and out of Redis: replies, JSON and lexical id ranges."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from relay.domain.ids import id_bound


def r(value: Awaitable[Any] | Any) -> Awaitable[Any]:
    """redis-py types asyncio results as ``Awaitable[T] | T`` (and as ``str`` where this
    client, with ``decode_responses=False``, returns ``bytes``); on this client they are
    awaitables of raw replies."""
    return cast(Awaitable[Any], value)


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def integer(value: bytes | None) -> int | None:
    return None if value is None or value == b"" else int(value)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def lex_range(prefix: str, since_ms: int | None, until_ms: int | None) -> tuple[str, str]:
    """ZRANGEBYLEX bounds for ids created in [since, until] (ids sort by creation time)."""
    low = "[" + id_bound(prefix, since_ms, upper=False) if since_ms is not None else "-"
    high = "[" + id_bound(prefix, until_ms, upper=True) if until_ms is not None else "+"
    return low, high


@dataclass(frozen=True, slots=True)
class Page:
    ids: list[str]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Which ids of a time-ordered index to read: created in [since, until], after a cursor."""

    since_ms: int | None = None
    until_ms: int | None = None
    cursor: str | None = None


class LexIndex:
    """A sorted set of time-ordered ids (score 0, lexical order), read by time range."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def page(
        self, index: str, window: TimeRange, count: int, *, oldest_first: bool = False
    ) -> Page:
        """Ids newest first (or oldest), ``count`` at most, after ``window.cursor``."""
        return await self.page_union([index], window, count, oldest_first=oldest_first)

    async def page_union(
        self, indexes: Sequence[str], window: TimeRange, count: int, *, oldest_first: bool = False
    ) -> Page:
        """One page over several indexes at once (a token's sources or subscriptions), in
        the same order and with the same cursor as :meth:`page` over one."""
        low, high = lex_range(self._prefix, window.since_ms, window.until_ms)
        cursor = window.cursor
        if cursor and oldest_first:
            low = "(" + cursor if low == "-" or cursor > low[1:] else low
        elif cursor:
            high = "(" + cursor if high == "+" or cursor < high[1:] else high
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                if oldest_first:
                    pipe.zrangebylex(index, low, high, start=0, num=count)
                else:
                    pipe.zrevrangebylex(index, high, low, start=0, num=count)
            replies = await pipe.execute() if indexes else []
        merged = sorted({i.decode() for raw in replies for i in raw}, reverse=not oldest_first)
        ids = merged[:count]
        more = len(merged) > count or any(len(raw) == count for raw in replies)
        return Page(ids, ids[-1] if more and ids else None)

    async def count_union(self, indexes: Sequence[str], window: TimeRange) -> int:
        low, high = lex_range(self._prefix, window.since_ms, window.until_ms)
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.zlexcount(index, low, high)
            counts = await pipe.execute() if indexes else []
        return sum(int(c) for c in counts)

    async def count(self, index: str, window: TimeRange) -> int:
        low, high = lex_range(self._prefix, window.since_ms, window.until_ms)
        total: int = await r(self._redis.zlexcount(index, low, high))
        return total
