"""Ingest: verify a webhook against its source and store it in one Redis round trip.

Sources are cached in process; the ingest script checks the cached revision against Redis
in the same atomic step that stores the event, so a changed or deleted source is noticed
on the very next request without costing a second round trip on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config.settings import Settings
from relay.delivery.connection import RedisHealth
from relay.delivery.tail import TailGate
from relay.domain.clock import now_ms
from relay.domain.eviction import eviction_problem
from relay.domain.ids import new_id
from relay.domain.models import Source
from relay.domain.tracecontext import TraceContext
from relay.domain.verification import Verified, check_headers, verify
from relay.storage import IngestResult, NewEvent, Store

LATE = (
    "Redis answered after this request's deadline, and so refused it: nothing was stored, try again"
)


class UnknownSource(LookupError):
    pass


class TooLong(ValueError):
    """An event type or idempotency key longer than the relay keeps: nothing is stored.

    ``field`` is ``event_type`` or ``idempotency_key``; ``header`` the request header it came
    from, when the source names one (else the verification scheme read it).
    """

    def __init__(self, field: str, header: str | None, scheme: str, limit: int) -> None:
        what = field.replace("_", " ")
        origin = f"the {header} header" if header else f"the {what} the {scheme} scheme reads"
        super().__init__(f"{origin} is longer than {limit} characters")
        self.field = field
        self.header = header


class NotStored(Exception):
    """Redis cannot take the event now and nothing was stored: the sender should try again.

    ``reason``: ``evicting`` (Redis's maxmemory-policy may drop it) or ``late`` (it reached
    Redis after the request's deadline, so the script refused it).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Challenge:
    """The provider wants an answer, not an event (Slack's url_verification)."""

    reply: dict[str, str]


@dataclass(frozen=True, slots=True)
class Stored:
    result: IngestResult
    source: str
    event_type: str | None
    headers: dict[str, str]  # the headers stored with the event


class Ingestor:
    def __init__(self, store: Store, settings: Settings, health: RedisHealth | None = None) -> None:
        self.store = store
        self.settings = settings
        self.health = health or RedisHealth()
        self._sources: dict[str, tuple[Source, str]] = {}
        self.tail = TailGate(store)

    async def source(self, name: str, *, fresh: bool = False) -> tuple[Source, str]:
        cached = None if fresh else self._sources.get(name)
        if cached is None:
            cached = await self.store.sources.get(name)
            if cached is None:
                self._sources.pop(name, None)
                raise UnknownSource(name)
            self._sources[name] = cached
        return cached

    def forget(self, name: str) -> None:
        self._sources.pop(name, None)

    def body_cap(self, source: Source) -> int:
        return source.max_body_bytes or self.settings.max_body_bytes

    @staticmethod
    def check_headers(source: Source, headers: Mapping[str, str]) -> None:
        """Refuse, before the body is read, a request whose signature headers are missing
        or malformed (raises ``VerificationError``)."""
        check_headers(source.verification, headers, now=now_ms() / 1000)

    async def ingest(
        self,
        name: str,
        headers: Mapping[str, str],
        body: bytes,
        content_type: str,
        trace: TraceContext | None = None,
    ) -> Stored | Challenge:
        """Verify and store one webhook (with ``trace``, its trace context, if it has one).
        ``headers`` has lower-case names."""
        source, rev = await self.source(name)
        if self.health.evicting is not None:
            raise NotStored("evicting", eviction_problem(self.health.evicting) or "")
        for _ in range(3):
            verified = verify(source.verification, headers, body, now=now_ms() / 1000)
            if verified.challenge is not None:
                return Challenge(verified.challenge)
            event_type, idem = self._identify(source, headers, verified)
            received = now_ms()
            event = NewEvent(
                id=new_id("evt", received),
                source=name,
                source_rev=rev,
                received_ms=received,
                event_type=event_type,
                content_type=content_type,
                headers={h: headers[h] for h in self.settings.stored_headers if h in headers},
                body=body,
                idempotency_key=idem,
                trace=trace,
            )
            # This process answers 503 once Redis has not answered within the socket
            # timeout: the script must not store what reaches Redis after that.
            deadline = self.health.redis_deadline_ms(self.settings.redis_socket_timeout_s)
            result = await self.store.events.ingest(
                event, self.settings.idempotency_ttl_s, deadline
            )
            if result.status == "late":
                raise NotStored("late", LATE)
            if result.status == "accepted":
                await self.tail.event(result.event_id, name, event_type, received)
            if result.status != "stale":
                return Stored(result, name, event_type, event.headers)
            # The source changed since we cached it: verify again against what Redis holds.
            source, rev = await self.source(name, fresh=True)
        raise RuntimeError(f"source {name!r} keeps changing under ingest")

    def _identify(
        self, source: Source, headers: Mapping[str, str], verified: Verified
    ) -> tuple[str | None, str | None]:
        # A source's explicit headers win over what the verification scheme derives. Both
        # values go into the event record, every log line about it and every delivery.
        event_type = self._pick(
            "event_type",
            source,
            headers,
            source.event_type_header,
            verified.event_type,
            self.settings.max_event_type_length,
        )
        idem = self._pick(
            "idempotency_key",
            source,
            headers,
            source.idempotency_header,
            verified.idempotency_key,
            self.settings.max_idempotency_key_length,
        )
        return event_type, idem

    @staticmethod
    def _pick(
        field: str,
        source: Source,
        headers: Mapping[str, str],
        header: str | None,
        derived: str | None,
        limit: int,
    ) -> str | None:
        given = headers.get(header.lower()) if header else None
        value = given or derived
        if value is not None and len(value) > limit:
            raise TooLong(field, header if given else None, source.verification.scheme, limit)
        return value
