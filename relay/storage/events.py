"""Events: what was accepted, stored once (``evt:{id}``, its body and its indexes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relay.domain.matching import ANY_SOURCE
from relay.domain.models import Event
from relay.domain.tracecontext import TraceContext
from relay.storage.codec import LexIndex, Page, TimeRange, dumps, r
from relay.storage.keys import Keys
from relay.storage.scripts import Ingest, Scripts

IngestStatus = Literal["accepted", "duplicate", "stale", "late"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: IngestStatus
    event_id: str
    # False when no subscription could want the event: it was fanned out (to nobody) as it
    # was stored.
    needs_fan_out: bool = False


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event as ingest stores it."""

    id: str
    source: str
    source_rev: str
    received_ms: int
    event_type: str | None
    content_type: str
    headers: dict[str, str]
    body: bytes
    idempotency_key: str | None
    # Kept only when tracing is on or the provider sent one: ~60 bytes an event otherwise.
    trace: TraceContext | None = None


def _meta(
    source: str,
    event_type: str | None,
    received_ms: int,
    content_type: str,
    headers: dict[str, str],
    idempotency_key: str | None,
    body_bytes: int,
    trace: TraceContext | None = None,
) -> bytes:
    meta: dict[str, object] = {
        "source": source,
        "event_type": event_type,
        "received_at": received_ms,
        "content_type": content_type,
        "headers": headers,
        "idempotency_key": idempotency_key,
        "body_bytes": body_bytes,
    }
    # In the metadata every attempt reads anyway (claim_lane.lua hands it out with each
    # claimed delivery): the trace crosses the queue at no extra round trip or Lua change.
    if trace is not None:
        meta["tp"] = trace.traceparent
        if trace.tracestate:
            meta["ts"] = trace.tracestate
    return dumps(meta)


def event_from(event_id: str, meta: bytes | None, unfanned: object) -> Event | None:
    if meta is None:
        return None
    fields = orjson.loads(meta)
    parent, state = fields.pop("tp", None), fields.pop("ts", None)
    event = Event(id=event_id, fanned_out=unfanned is None, **fields)
    if parent is not None:
        event._trace = TraceContext(parent, state)
    return event


class EventStore:
    def __init__(self, redis: Redis, scripts: Scripts, retention_ms: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._retention_ms = retention_ms
        self._index = LexIndex(redis, "evt")

    async def ingest(
        self, event: NewEvent, idempotency_ttl_s: int, deadline_ms: int = 0
    ) -> IngestResult:
        """Store an event in one round trip; a repeat of an idempotency key stores nothing,
        and so does a call that reaches Redis after ``deadline_ms`` (Redis's clock; 0:
        none), whose status is ``late``."""
        meta = _meta(event.source, event.event_type, event.received_ms, event.content_type,
                     event.headers, event.idempotency_key, len(event.body),
                     event.trace)  # fmt: skip
        status, value, *fan_out = await self._scripts.run(
            Ingest(
                source_key=Keys.source(event.source),
                idempotency_key=Keys.idempotency(event.source, event.idempotency_key or ""),
                event_key=Keys.event(event.id),
                body_key=Keys.event_body(event.id),
                events_key=Keys.events,
                source_events_key=Keys.source_events(event.source),
                unfanned_key=Keys.unfanned,
                indexes_key=Keys.indexes,
                source_subs_key=Keys.subs_for(event.source),
                every_source_subs_key=Keys.subs_for(ANY_SOURCE),
                source_rev=event.source_rev,
                use_idempotency=bool(event.idempotency_key),
                idempotency_ttl_s=idempotency_ttl_s,
                event_id=event.id,
                received_ms=event.received_ms,
                expire_at_ms=event.received_ms + self._retention_ms,
                meta=meta,
                body=event.body,
                deadline_ms=deadline_ms,
            )
        )
        return IngestResult(status.decode(), value.decode(), fan_out == [b"1"])

    async def store_own(
        self, *, event_id: str, source: str, event_type: str, body: bytes, now_ms: int
    ) -> None:
        """Store an event the relay made itself (a subscription test), already fanned out."""
        meta = _meta(source, event_type, now_ms, "application/json", {}, None, len(body))
        expire_at = now_ms + self._retention_ms
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(Keys.event(event_id), meta, pxat=expire_at)
            pipe.set(Keys.event_body(event_id), body, pxat=expire_at)
            pipe.zadd(Keys.events, {event_id: 0})
            pipe.zadd(Keys.source_events(source), {event_id: 0})
            pipe.sadd(Keys.indexes, Keys.source_events(source))
            await pipe.execute()

    async def get(self, event_id: str) -> Event | None:
        found = await self.get_many([event_id])
        return found[0] if found else None

    async def get_many(self, ids: Sequence[str]) -> list[Event]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for event_id in ids:
                pipe.get(Keys.event(event_id))
                pipe.zscore(Keys.unfanned, event_id)
            rows = await pipe.execute()
        found = (event_from(i, rows[2 * n], rows[2 * n + 1]) for n, i in enumerate(ids))
        return [e for e in found if e is not None]

    async def body(self, event_id: str) -> tuple[bytes, str] | None:
        """The raw body and its content-type."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(Keys.event(event_id))
            pipe.get(Keys.event_body(event_id))
            meta, body = await pipe.execute()
        if meta is None or body is None:
            return None
        content_type: str = orjson.loads(meta)["content_type"]
        return body, content_type

    async def delivery_ids(self, event_id: str) -> list[str]:
        key = Keys.event_deliveries(event_id)
        try:
            joined = await r(self._redis.get(key))
        except ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            # An event fanned out before the ids became one string keeps its list.
            return [i.decode() for i in await r(self._redis.lrange(key, 0, -1))]
        return joined.decode().split() if joined else []

    async def skipped(self, event_id: str) -> dict[str, str]:
        """Subscriptions whose filter skipped the event, and the condition that failed."""
        raw = await r(self._redis.hgetall(Keys.event_skipped(event_id)))
        return {k.decode(): v.decode() for k, v in sorted(raw.items())}

    async def fanout_cursors(self, ids: Sequence[str]) -> dict[str, str]:
        """Where each of these events' fan-out in chunks stands ("": not started, or done)."""
        found = await r(self._redis.mget([Keys.event_fanout_cursor(i) for i in ids]))
        return {i: c.decode() if c else "" for i, c in zip(ids, found, strict=True)}

    async def unfanned_before(self, cutoff_ms: int, limit: int) -> list[str]:
        """Events accepted by ``cutoff_ms`` whose fan-out has not happened."""
        ids = await r(
            self._redis.zrangebyscore(Keys.unfanned, "-inf", cutoff_ms, start=0, num=limit)
        )
        return [i.decode() for i in ids]

    async def page(
        self,
        window: TimeRange,
        count: int,
        *,
        source: str | None = None,
        within: Sequence[str] | None = None,
    ) -> Page:
        """Event ids newest first: of one source, of the sources ``within`` a token's scope,
        or of all."""
        if source is not None:
            indexes = [Keys.source_events(source)]
        elif within is not None:
            indexes = [Keys.source_events(s) for s in within]
        else:
            indexes = [Keys.events]
        return await self._index.page_union(indexes, window, count)
