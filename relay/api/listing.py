"""Cursor pagination over the store's time-ordered indexes, with filters applied on the way."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema

from relay.storage import Page, TimeRange

T = TypeVar("T")

# A filtered listing reads at most this many index pages for one answer; past that it
# answers with what it found and a cursor, so a rare filter can never scan everything.
MAX_PAGES = 20


class Listing(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Epoch milliseconds, as answers gave times before RFC 3339: 11 to 14 digits (1973 to 5138:
# datetime ends at the year 9999).
_EPOCH_MS = re.compile(r"[0-9]{11,14}")


def _date_time_or_ms(value: object) -> object:
    # pydantic would read any number ("0.5", 7) as seconds or milliseconds since 1970; the
    # document promises a date-time, or the epoch milliseconds earlier answers carried.
    if isinstance(value, str) and _EPOCH_MS.fullmatch(value.strip()):
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    if isinstance(value, int | float) or (
        isinstance(value, str) and re.fullmatch(r"\s*[-+]?[\d.eE+-]+\s*", value)
    ):
        raise ValueError(
            "expected an RFC 3339 date-time such as 2026-11-24T10:00:00Z (ISO 8601), or "
            "epoch milliseconds"
        )
    return value


def _utc_since_epoch(value: datetime) -> datetime:
    # A time without a zone means UTC, not wherever the server happens to run. Nothing is
    # older than 1970, so an earlier bound means the same as 1970 (ids cannot name it).
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return max(value, _EPOCH)


Moment = Annotated[
    datetime,
    BeforeValidator(_date_time_or_ms),
    AfterValidator(_utc_since_epoch),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "pattern": "^[0-9]{11,14}$", "description": "epoch ms"},
            ]
        }
    ),
]


def to_ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


async def collect(
    fetch: Callable[[TimeRange, int], Awaitable[Page]],
    *,
    load: Callable[[Sequence[str]], Awaitable[list[T]]],
    key: Callable[[T], str],
    keep: Callable[[T], bool] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None,
    limit: int,
) -> Listing[T]:
    """Newest first: up to ``limit`` items that pass ``keep``, and where to continue.

    ``fetch`` reads one page of ids from a store's index; ``load`` turns ids into items."""
    found: list[T] = []
    for _ in range(MAX_PAGES):
        page = await fetch(TimeRange(to_ms(since), to_ms(until), cursor), limit)
        for item in await load(page.ids):
            if keep is None or keep(item):
                found.append(item)
                if len(found) == limit:
                    return Listing(data=found, next_cursor=key(item))
        cursor = page.next_cursor
        if cursor is None:
            break
    return Listing(data=found, next_cursor=cursor)
