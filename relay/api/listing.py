"""Cursor pagination over the store's time-ordered indexes, with filters applied on the way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, Field

from relay.storage import Page, TimeRange

T = TypeVar("T")

# A filtered listing reads at most this many index pages for one answer; past that it
# answers with what it found and a cursor, so a rare filter can never scan everything.
MAX_PAGES = 20


class Listing(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


def _utc_since_epoch(value: datetime) -> datetime:
    # A time without a zone means UTC, not wherever the server happens to run; ids cannot
    # name a time before 1970, so such a bound would only raise further down.
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if value.year < 1970:
        raise ValueError("must be 1970 or later")
    return value


Moment = Annotated[datetime, AfterValidator(_utc_since_epoch)]


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
