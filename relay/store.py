"""Every Redis key and Lua script the relay uses lives here.

Each state change that matters is one atomic step (a Lua script or a MULTI transaction),
so a process that dies between two lines of Python leaves Redis in a state that the
recovery cron knows how to finish:

- ``ingest``: idempotency check, event record and the "not fanned out yet" index, together.
- ``commit_fanout``: the deliveries, the due index and the "fanned out" mark, together;
  a second fan-out of the same event finds the mark and does nothing.
- ``claim`` / ``record_attempt``: a delivery moves pending -> delivering -> succeeded,
  failed (with its next due time) or dead, with its attempt appended in the same step.

Key layout (prefix ``relay:``)::

    source:{name}         hash  config (JSON), rev
    sources               set   source names
    sub:{id}              hash  config (JSON), enabled, disabled_reason
    subs                  set   subscription ids
    subs:src:{source}     set   subscription ids listening to a source ("*": every source)
    evt:{id}              hash  event metadata and the raw body, stored once
    evt:{id}:dlv          list  delivery ids of the event
    events                zset  event ids by receipt time (ms)
    events:unfanned       zset  events accepted but not yet fanned out, by receipt time
    idem:{source}:{key}   str   the first event id for an idempotency key (with TTL)
    dlv:{id}              hash  delivery state
    dlv:{id}:att          list  attempt records (JSON)
    dlv:due               zset  live deliveries by the time they next need attention (ms)
    dlv:dead              zset  dead deliveries by the time they died (ms)
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError as _WatchError

from relay.models import (
    Attempt,
    Delivery,
    DeliveryMode,
    DeliveryStatus,
    Event,
    Source,
    SourceIn,
    Subscription,
)

PREFIX = "relay:"


class Keys:
    """Key names, in one place so no other module spells a Redis key."""

    sources = PREFIX + "sources"
    subs = PREFIX + "subs"
    events = PREFIX + "events"
    unfanned = PREFIX + "events:unfanned"
    due = PREFIX + "dlv:due"
    dead = PREFIX + "dlv:dead"

    @staticmethod
    def source(name: str) -> str:
        return f"{PREFIX}source:{name}"

    @staticmethod
    def sub(sub_id: str) -> str:
        return f"{PREFIX}sub:{sub_id}"

    @staticmethod
    def subs_for(source: str) -> str:
        return f"{PREFIX}subs:src:{source}"

    @staticmethod
    def event(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}"

    @staticmethod
    def event_deliveries(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}:dlv"

    @staticmethod
    def idempotency(source: str, key: str) -> str:
        return f"{PREFIX}idem:{source}:{key}"

    @staticmethod
    def delivery(delivery_id: str) -> str:
        return f"{PREFIX}dlv:{delivery_id}"

    @staticmethod
    def attempts(delivery_id: str) -> str:
        return f"{PREFIX}dlv:{delivery_id}:att"


# KEYS: source, idempotency, event, events, unfanned
# ARGV: source rev, use idempotency ("1"/"0"), idempotency ttl, event id, received ms, fields...
_INGEST = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if rev ~= ARGV[1] then return {'stale', rev or ''} end
if ARGV[2] == '1' then
  local first = redis.call('GET', KEYS[2])
  if first then return {'duplicate', first} end
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
end
redis.call('HSET', KEYS[3], unpack(ARGV, 6))
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
return {'accepted', ARGV[4]}
"""

# KEYS: unfanned, event, event deliveries, due, then one delivery hash per delivery
# ARGV: event id, now ms, then per delivery: id, due ms, fields (JSON object of strings)
_COMMIT_FANOUT = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local n = 0
for i = 3, #ARGV, 3 do
  n = n + 1
  local fields = cjson.decode(ARGV[i + 2])
  for k, v in pairs(fields) do redis.call('HSET', KEYS[4 + n], k, v) end
  redis.call('RPUSH', KEYS[3], ARGV[i])
  redis.call('ZADD', KEYS[4], ARGV[i + 1], ARGV[i])
end
redis.call('HSET', KEYS[2], 'fanned_out', '1', 'fanned_out_at', ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# KEYS: delivery, due
# ARGV: delivery id, attempt number, now ms, lease until ms
_CLAIM = """
local d = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'lease_until')
if not d[1] then return 'missing' end
if d[1] == 'succeeded' or d[1] == 'dead' then return 'terminal' end
if tonumber(d[2]) ~= tonumber(ARGV[2]) - 1 then return 'stale' end
if d[1] == 'delivering' and tonumber(d[3] or '0') > tonumber(ARGV[3]) then return 'busy' end
redis.call('HSET', KEYS[1], 'status', 'delivering', 'lease_until', ARGV[4], 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 'ok'
"""

# KEYS: delivery, attempts, due, dead, subscription
# ARGV: delivery id, attempt number, attempt JSON, status, due score ('' = none), now ms,
#       next attempt ms ('' = none), last status code, last error, disable reason ('' = keep)
_RECORD = """
local cur = redis.call('HGET', KEYS[1], 'attempts')
if not cur or tonumber(cur) ~= tonumber(ARGV[2]) - 1 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'attempts', ARGV[2], 'status', ARGV[4], 'updated_at', ARGV[6],
  'next_attempt_at', ARGV[7], 'last_status_code', ARGV[8], 'last_error', ARGV[9],
  'lease_until', '0')
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'first_attempt_at', ARGV[6]) end
if ARGV[4] == 'succeeded' then
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif ARGV[4] == 'dead' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
end
if ARGV[10] ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HSET', KEYS[5], 'enabled', '0', 'disabled_reason', ARGV[10])
end
return 1
"""


IngestStatus = Literal["accepted", "duplicate", "stale"]
ClaimStatus = Literal["ok", "missing", "terminal", "stale", "busy"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: IngestStatus
    event_id: str


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    subscription_id: str
    mode: DeliveryMode
    due_ms: int


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """Everything one attempt needs, read in one round trip after the claim."""

    delivery: Delivery
    first_attempt_at: int | None
    event: Event
    body: bytes
    subscription: Subscription | None


def _r(value: Awaitable[Any] | Any) -> Awaitable[Any]:
    """redis-py types asyncio results as ``Awaitable[T] | T`` (and as ``str`` where this
    client, with ``decode_responses=False``, returns ``bytes``); on this client they are
    awaitables of raw replies."""
    return cast(Awaitable[Any], value)


def _s(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _int(value: bytes | None) -> int | None:
    return None if value is None or value == b"" else int(value)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


class RelayStore:
    """The relay's persistence, over one ``redis.asyncio.Redis`` (``decode_responses=False``)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._ingest = redis.register_script(_INGEST)
        self._commit_fanout = redis.register_script(_COMMIT_FANOUT)
        self._claim = redis.register_script(_CLAIM)
        self._record = redis.register_script(_RECORD)

    # --- sources ---------------------------------------------------------------------------

    async def put_source(self, name: str, spec: SourceIn, now_ms: int) -> tuple[Source, bool]:
        """Create or replace a source; returns it and whether it was new."""
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(Keys.source(name))
                    old = await _r(pipe.hget(Keys.source(name), "config"))
                    created_at = now_ms if old is None else orjson.loads(old)["created_at"]
                    source = Source(
                        name=name, created_at=created_at, updated_at=now_ms, **dict(spec)
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(Keys.source(name), "config", self._source_json(source))  # type: ignore[arg-type]
                    pipe.hincrby(Keys.source(name), "rev", 1)
                    pipe.sadd(Keys.sources, name)
                    await pipe.execute()
                    return source, old is None
                except _WatchError:
                    continue

    @staticmethod
    def _source_json(source: Source) -> bytes:
        # Secrets are stored (verification needs them) but never leave through the API.
        data = source.model_dump(mode="json")
        verification = source.verification.model_dump(mode="python")
        data["verification"] = {
            k: ([s.get_secret_value() for s in v] if k == "secrets" else v)
            for k, v in verification.items()
        }
        return _dumps(data)

    async def get_source(self, name: str) -> tuple[Source, str] | None:
        """The source and its revision (the ingest script refuses a stale revision)."""
        config, rev = await _r(self.redis.hmget(Keys.source(name), ["config", "rev"]))
        if config is None:
            return None
        return Source.model_validate_json(config), rev.decode()

    async def list_sources(self) -> list[Source]:
        names = sorted(n.decode() for n in await _r(self.redis.smembers(Keys.sources)))
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(Keys.source(name), "config")
            configs = await pipe.execute()
        return [Source.model_validate_json(c) for c in configs if c is not None]

    async def delete_source(self, name: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(Keys.source(name))
            pipe.srem(Keys.sources, name)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    # --- subscriptions ---------------------------------------------------------------------

    @staticmethod
    def _sub_fields(sub: Subscription) -> dict[str, bytes | str]:
        return {
            "config": _dumps(sub.model_dump(mode="json", exclude={"enabled", "disabled_reason"})),
            "enabled": "1" if sub.enabled else "0",
            "disabled_reason": sub.disabled_reason or "",
        }

    @staticmethod
    def _sub_from(fields: Sequence[bytes | None]) -> Subscription | None:
        config, enabled, reason = fields
        if config is None:
            return None
        data = orjson.loads(config)
        data["enabled"] = enabled == b"1"
        data["disabled_reason"] = _s(reason) or None
        return Subscription.model_validate(data)

    async def save_subscription(self, sub: Subscription, old_sources: Iterable[str] = ()) -> None:
        """Write a subscription and move it between source indexes, atomically."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for source in set(old_sources) - set(sub.sources):
                pipe.srem(Keys.subs_for(source), sub.id)
            for source in sub.sources:
                pipe.sadd(Keys.subs_for(source), sub.id)
            pipe.hset(Keys.sub(sub.id), mapping=self._sub_fields(sub))
            pipe.sadd(Keys.subs, sub.id)
            await pipe.execute()

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        fields = await _r(
            self.redis.hmget(Keys.sub(sub_id), ["config", "enabled", "disabled_reason"])
        )
        return self._sub_from(fields)

    async def _subscriptions(self, ids: Iterable[bytes | str]) -> list[Subscription]:
        names = sorted(i.decode() if isinstance(i, bytes) else i for i in ids)
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sub_id in names:
                pipe.hmget(Keys.sub(sub_id), ["config", "enabled", "disabled_reason"])
            rows = await pipe.execute()
        return [s for s in map(self._sub_from, rows) if s is not None]

    async def list_subscriptions(self) -> list[Subscription]:
        return await self._subscriptions(await _r(self.redis.smembers(Keys.subs)))

    async def subscriptions_for_source(self, source: str) -> list[Subscription]:
        ids = await _r(self.redis.sunion([Keys.subs_for(source), Keys.subs_for("*")]))
        return await self._subscriptions(ids)

    async def delete_subscription(self, sub: Subscription) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for source in sub.sources:
                pipe.srem(Keys.subs_for(source), sub.id)
            pipe.delete(Keys.sub(sub.id))
            pipe.srem(Keys.subs, sub.id)
            await pipe.execute()

    # --- events ----------------------------------------------------------------------------

    async def ingest(
        self,
        *,
        event_id: str,
        source: str,
        source_rev: str,
        received_ms: int,
        event_type: str | None,
        content_type: str,
        headers: dict[str, str],
        body: bytes,
        idempotency_key: str | None,
        idempotency_ttl_s: int,
    ) -> IngestResult:
        """Store an event in one round trip; a repeat of an idempotency key stores nothing."""
        fields: list[bytes | str | int] = [
            "source", source,
            "event_type", event_type or "",
            "received_at", received_ms,
            "content_type", content_type,
            "headers", _dumps(headers),
            "idempotency_key", idempotency_key or "",
            "body", body,
            "body_bytes", len(body),
            "fanned_out", "0",
        ]  # fmt: skip
        idem_key = Keys.idempotency(source, idempotency_key or "")
        status, value = await self._ingest(
            keys=[Keys.source(source), idem_key, Keys.event(event_id), Keys.events, Keys.unfanned],
            args=[
                source_rev,
                "1" if idempotency_key else "0",
                idempotency_ttl_s,
                event_id,
                received_ms,
                *fields,
            ],
        )
        return IngestResult(status=status.decode(), event_id=value.decode())

    _EVENT_FIELDS = (
        "source",
        "event_type",
        "received_at",
        "content_type",
        "headers",
        "idempotency_key",
        "body_bytes",
        "fanned_out",
    )

    def _event_from(self, event_id: str, row: Sequence[bytes | None]) -> Event | None:
        data = dict(zip(self._EVENT_FIELDS, row, strict=True))
        if data["source"] is None:
            return None
        return Event(
            id=event_id,
            source=_s(data["source"]) or "",
            event_type=_s(data["event_type"]) or None,
            received_at=_int(data["received_at"]) or 0,
            content_type=_s(data["content_type"]) or "",
            headers=orjson.loads(data["headers"] or b"{}"),
            idempotency_key=_s(data["idempotency_key"]) or None,
            body_bytes=_int(data["body_bytes"]) or 0,
            fanned_out=data["fanned_out"] == b"1",
        )

    async def get_event(self, event_id: str) -> Event | None:
        row = await _r(self.redis.hmget(Keys.event(event_id), list(self._EVENT_FIELDS)))
        return self._event_from(event_id, row)

    async def get_event_body(self, event_id: str) -> bytes | None:
        body: bytes | None = await _r(self.redis.hget(Keys.event(event_id), "body"))
        return body

    async def event_delivery_ids(self, event_id: str) -> list[str]:
        return [
            i.decode() for i in await _r(self.redis.lrange(Keys.event_deliveries(event_id), 0, -1))
        ]

    async def unfanned_before(self, cutoff_ms: int, limit: int) -> list[str]:
        ids = await _r(
            self.redis.zrangebyscore(Keys.unfanned, "-inf", cutoff_ms, start=0, num=limit)
        )
        return [i.decode() for i in ids]

    async def commit_fanout(
        self, event_id: str, now_ms: int, deliveries: Sequence[NewDelivery]
    ) -> bool:
        """Record an event's deliveries and mark it fanned out; False if it already was."""
        args: list[str | int | bytes] = [event_id, now_ms]
        keys = [Keys.unfanned, Keys.event(event_id), Keys.event_deliveries(event_id), Keys.due]
        for d in deliveries:
            keys.append(Keys.delivery(d.id))
            fields = {
                "event_id": event_id,
                "subscription_id": d.subscription_id,
                "mode": d.mode.value,
                "status": DeliveryStatus.PENDING.value,
                "attempts": "0",
                "created_at": str(now_ms),
                "updated_at": str(now_ms),
                "next_attempt_at": str(now_ms),
            }
            args += [d.id, d.due_ms, _dumps(fields)]
        return bool(await self._commit_fanout(keys=keys, args=args))

    # --- deliveries ------------------------------------------------------------------------

    _DELIVERY_FIELDS = (
        "event_id",
        "subscription_id",
        "mode",
        "status",
        "attempts",
        "created_at",
        "updated_at",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "first_attempt_at",
    )

    def _delivery_from(
        self, delivery_id: str, row: Sequence[bytes | None]
    ) -> tuple[Delivery, int | None] | None:
        data = dict(zip(self._DELIVERY_FIELDS, row, strict=True))
        if data["event_id"] is None:
            return None
        delivery = Delivery(
            id=delivery_id,
            event_id=_s(data["event_id"]) or "",
            subscription_id=_s(data["subscription_id"]) or "",
            mode=DeliveryMode(_s(data["mode"]) or DeliveryMode.RELIABLE),
            status=DeliveryStatus(_s(data["status"]) or DeliveryStatus.PENDING),
            attempts=_int(data["attempts"]) or 0,
            created_at=_int(data["created_at"]) or 0,
            updated_at=_int(data["updated_at"]) or 0,
            next_attempt_at=_int(data["next_attempt_at"]),
            last_status_code=_int(data["last_status_code"]),
            last_error=_s(data["last_error"]) or None,
        )
        return delivery, _int(data["first_attempt_at"])

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        row = await _r(self.redis.hmget(Keys.delivery(delivery_id), list(self._DELIVERY_FIELDS)))
        found = self._delivery_from(delivery_id, row)
        return None if found is None else found[0]

    async def get_deliveries(self, ids: Sequence[str]) -> list[Delivery]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hmget(Keys.delivery(delivery_id), list(self._DELIVERY_FIELDS))
            rows = await pipe.execute()
        found = (self._delivery_from(i, row) for i, row in zip(ids, rows, strict=True))
        return [f[0] for f in found if f is not None]

    async def get_attempts(self, delivery_id: str) -> list[Attempt]:
        raw = await _r(self.redis.lrange(Keys.attempts(delivery_id), 0, -1))
        return [Attempt.model_validate_json(a) for a in raw]

    async def delivery_subscription_id(self, delivery_id: str) -> str | None:
        return _s(await _r(self.redis.hget(Keys.delivery(delivery_id), "subscription_id")))

    async def claim(
        self, delivery_id: str, attempt: int, now_ms: int, lease_until_ms: int
    ) -> ClaimStatus:
        """Take attempt ``attempt`` of a delivery, unless it is done, taken or out of date."""
        status: bytes = await self._claim(
            keys=[Keys.delivery(delivery_id), Keys.due],
            args=[delivery_id, attempt, now_ms, lease_until_ms],
        )
        return status.decode()  # type: ignore[return-value]

    async def load_context(self, delivery_id: str) -> DeliveryContext | None:
        row = await _r(self.redis.hmget(Keys.delivery(delivery_id), list(self._DELIVERY_FIELDS)))
        found = self._delivery_from(delivery_id, row)
        if found is None:
            return None
        delivery, first_attempt_at = found
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(Keys.event(delivery.event_id), [*self._EVENT_FIELDS, "body"])
            pipe.hmget(Keys.sub(delivery.subscription_id), ["config", "enabled", "disabled_reason"])
            event_row, sub_row = await pipe.execute()
        event = self._event_from(delivery.event_id, event_row[:-1])
        if event is None:
            return None
        return DeliveryContext(
            delivery=delivery,
            first_attempt_at=first_attempt_at,
            event=event,
            body=event_row[-1] or b"",
            subscription=self._sub_from(sub_row),
        )

    async def record_attempt(
        self,
        *,
        delivery: Delivery,
        attempt: Attempt,
        due_ms: int | None,
        now_ms: int,
        disable_reason: str | None = None,
    ) -> bool:
        """Append an attempt and move the delivery to its new status in one step.

        ``due_ms`` is when the delivery next needs attention (its next attempt, or a later
        safety net while a worker keeps it). False when another run recorded this attempt.
        """
        recorded = await self._record(
            keys=[
                Keys.delivery(delivery.id),
                Keys.attempts(delivery.id),
                Keys.due,
                Keys.dead,
                Keys.sub(delivery.subscription_id),
            ],
            args=[
                delivery.id,
                attempt.number,
                attempt.model_dump_json(),
                attempt.outcome.value,
                "" if due_ms is None else due_ms,
                now_ms,
                "" if attempt.next_attempt_at is None else attempt.next_attempt_at,
                "" if attempt.status_code is None else attempt.status_code,
                attempt.error or "",
                disable_reason or "",
            ],
        )
        return bool(recorded)

    async def due_before(self, cutoff_ms: int, limit: int) -> list[tuple[str, int]]:
        """Live deliveries due by ``cutoff_ms``, with their attempt counts so far."""
        ids = [
            i.decode()
            for i in await _r(
                self.redis.zrangebyscore(Keys.due, "-inf", cutoff_ms, start=0, num=limit)
            )
        ]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hget(Keys.delivery(delivery_id), "attempts")
            counts = await pipe.execute()
        return [(i, int(c)) for i, c in zip(ids, counts, strict=True) if c is not None]
