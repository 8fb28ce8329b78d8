"""Subscription lifecycle: create, change, rotate, pause and resume, test, delete.

The rules live here, not in the routes: re-enabling clears the reason it was disabled,
rotating keeps the old secret signing for an overlap, resuming re-queues exactly the
parked deliveries in the order they fell due, and a test is one signed attempt that goes
out even while the subscription is paused.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from pydantic import HttpUrl

from config.settings import Settings
from relay.delivery.attempt import Attempter
from relay.delivery.fanout import UnknownSubscription
from relay.domain.addresses import ip_literal
from relay.domain.clock import now_ms, rfc3339
from relay.domain.filters import Filter
from relay.domain.ids import new_id
from relay.domain.input_rules import STORED
from relay.domain.matching import ANY_SOURCE
from relay.domain.models import (
    TEST_EVENT_TYPE,
    TEST_SOURCE,
    Delivery,
    DeliveryMode,
    DeliveryStatus,
    Ordering,
    SecretRotated,
    Subscription,
    SubscriptionIn,
    SubscriptionPatch,
    Trigger,
    UnusableSubscription,
    check_one_authorization,
)
from relay.domain.ops import OPS_SOURCE
from relay.domain.ordering import HEADER_PREFIX
from relay.domain.signing import generate_secret
from relay.storage import NewDeliveries, NewDelivery, Store, UnusableRecord

log = structlog.get_logger("relay.admin")


class InvalidSubscription(ValueError):
    """Valid JSON that makes no usable subscription here."""


class BlockedSubscriber(InvalidSubscription):
    """The URL's host is an address the relay may not call."""


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to now (bounded: a slow resolver is no answer)."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=_RESOLVE_TIMEOUT_S
    )
    return sorted({str(info[4][0]) for info in infos})


_RESOLVE_TIMEOUT_S = 3.0
WARNINGS_KEPT_S = 60.0


@dataclass(frozen=True, slots=True)
class Saved:
    """A subscription as saved, and what its maker should know (a host that does not
    resolve yet)."""

    subscription: Subscription
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class TestSent:
    event_id: str
    delivery: Delivery


class Subscriptions:
    def __init__(self, store: Store, attempter: Attempter, settings: Settings) -> None:
        self._store = store
        self._attempter = attempter
        self._settings = settings
        # Replaceable: a test that must not query DNS gives its own.
        self.resolve: Resolver = resolve_host
        self._warnings: dict[str, tuple[float, list[str]]] = {}

    def _check_ordering(self, spec: Ordering | None) -> None:
        """A header can only order deliveries if the relay keeps it with the event: fan-out
        after a crash reads the event back from Redis, and must find the same key."""
        if spec is None or spec.key is None or not spec.key.startswith(HEADER_PREFIX):
            return
        name = spec.key[len(HEADER_PREFIX) :]
        if name not in self._settings.stored_headers:
            raise InvalidSubscription(
                f"ordering key header {name!r} is not stored with events; add it to "
                "RELAY_STORED_HEADERS"
            )

    def _check_filter(self, spec: Filter | None) -> None:
        """A filter can only test headers the relay keeps with each event."""
        missing = sorted(set(spec.headers) - set(self._settings.stored_headers)) if spec else []
        if missing:
            raise InvalidSubscription(
                f"filter: header {missing[0]!r} is not stored with events; add it to "
                "RELAY_STORED_HEADERS"
            )

    async def _check_reachable(self, url: HttpUrl) -> list[str]:
        """Refuse, up front, a URL whose host is, or only resolves to, addresses the relay
        may not call (``localhost`` as much as ``127.0.0.1``). Every connection is checked
        again on what the name resolves to then; a name that does not resolve yet is
        accepted, with a warning."""
        host = url.host or ""
        address = ip_literal(host)
        if address is not None:
            addresses = [address]
        else:
            try:
                addresses = await self.resolve(host, url.port or 0)
            except (OSError, TimeoutError, UnicodeError):
                return [f"{host} does not resolve (yet); deliveries fail until it does"]
        guard = self._settings.address_guard
        if addresses and not any(guard.allows(a) for a in addresses):
            shown = host if address is not None else f"{host} ({', '.join(sorted(addresses))})"
            raise BlockedSubscriber(
                f"{shown} is not a public address; allow its network with "
                "RELAY_ALLOWED_PRIVATE_NETWORKS to deliver there"
            )
        return []

    async def warnings(self, url: HttpUrl | str) -> list[str]:
        """What a saved subscription's maker was warned of, asked again (the dashboard shows
        it: a host that still does not resolve, or that now resolves only to addresses the
        relay may not call). Answers are kept a minute: the Overview asks every 5 s."""
        key = str(url)
        now = time.monotonic()
        kept = self._warnings.get(key)
        if kept is not None and now - kept[0] < WARNINGS_KEPT_S:
            return kept[1]
        try:
            found = await self._check_reachable(HttpUrl(key) if isinstance(url, str) else url)
        except BlockedSubscriber as exc:
            found = [str(exc)]
        if len(self._warnings) >= 10_000:  # bounded: URLs come and go
            self._warnings.clear()
        self._warnings[key] = (now, found)
        return found

    async def _check_sources(self, sources: list[str] | None) -> None:
        """Source names must exist: a typo would otherwise never match anything."""
        named = [s for s in sources or [] if s not in (ANY_SOURCE, OPS_SOURCE)]
        missing = await self._store.sources.missing(named)
        if missing:
            raise InvalidSubscription(
                f"no source named {', '.join(map(repr, missing))}; create it first "
                '(PUT /api/sources/{name}), or use "*" for every source'
            )

    async def lookup(self, sub_id: str) -> Subscription | UnusableSubscription:
        """A subscription as stored, usable or not (reading, listing, deleting)."""
        sub = await self._store.subscriptions.get(sub_id)
        if sub is None:
            raise UnknownSubscription(sub_id)
        return sub

    async def get(self, sub_id: str) -> Subscription:
        """A subscription to act on; raises :class:`UnusableRecord` for one it cannot use."""
        sub = await self.lookup(sub_id)
        if isinstance(sub, UnusableSubscription):
            raise UnusableRecord(sub)
        return sub

    async def create(self, spec: SubscriptionIn, *, called_by_relay: bool = True) -> Saved:
        """A new subscription with a fresh signing secret, and warnings worth showing.
        ``called_by_relay`` False: a `relay listen` one, whose URL (the laptop's) the relay
        never calls, so its address is not checked."""
        warnings = await self._check_reachable(spec.url) if called_by_relay else []
        await self._check_sources(spec.sources)
        self._check_ordering(spec.ordering)
        self._check_filter(spec.filter)
        now = now_ms()
        sub = Subscription(
            id=new_id("sub", now), secret=generate_secret(), created_at=now, updated_at=now,
            **dict(spec),
        )  # fmt: skip
        await self._store.subscriptions.create(sub)
        log.info("subscription.created", subscription_id=sub.id, sources=sub.sources)
        return Saved(sub, warnings)

    async def _change(
        self, sub_id: str, change: Callable[[Subscription], dict[str, Any]]
    ) -> Subscription:
        """Apply ``change`` (fields to set) as one optimistic transaction; every change
        moves ``updated_at`` forward, which also tells cached retry policies apart."""

        def apply(current: Subscription) -> Subscription:
            updated = {**current.model_dump(), **change(current)}
            updated["updated_at"] = max(now_ms(), current.updated_at + 1)
            # Stored rules: a field an older version wrote is not refused on an unrelated edit.
            return Subscription.model_validate(updated, context=STORED)

        updated = await self._store.subscriptions.update(sub_id, apply)
        if updated is None:
            raise UnknownSubscription(sub_id)
        return updated

    async def update(self, sub_id: str, patch: SubscriptionPatch) -> Saved:
        """Change some fields. Re-enabling clears the reason it was disabled.

        Raises pydantic's ``ValidationError`` for valid JSON that makes no valid
        subscription."""
        warnings = [] if patch.url is None else await self._check_reachable(patch.url)
        await self._check_sources(patch.sources)
        self._check_ordering(patch.ordering)
        self._check_filter(patch.filter)
        changes = patch.changes()
        if changes.get("enabled") is True:
            changes["disabled_reason"] = None

        def checked(current: Subscription) -> dict[str, Any]:
            # The URL and the headers may come from different edits: check them together.
            if patch.url is not None or patch.headers is not None:
                headers = current.headers if patch.headers is None else patch.headers
                try:
                    check_one_authorization(patch.url or current.url, headers)
                except ValueError as exc:
                    raise InvalidSubscription(str(exc)) from None
            return changes

        updated = await self._change(sub_id, checked)
        log.info("subscription.updated", subscription_id=sub_id, fields=sorted(changes))
        return Saved(updated, warnings)

    async def rotate_secret(self, sub_id: str) -> SecretRotated:
        """A new signing secret; the previous one keeps signing for the overlap."""
        secret = generate_secret()
        expires = now_ms() + self._settings.secret_rotation_overlap_s * 1000
        await self._change(
            sub_id,
            lambda current: {
                "secret": secret,
                "previous_secret": current.secret,
                "previous_secret_expires_at": expires,
            },
        )
        log.info("subscription.secret_rotated", subscription_id=sub_id, overlap_until=expires)
        return SecretRotated(id=sub_id, secret=secret, previous_secret_expires_at=expires)

    async def set_paused(self, sub_id: str, paused: bool) -> Subscription | UnusableSubscription:
        """Pause (its deliveries wait in its lane, in order) or resume (they go out at once,
        in the order they fell due)."""
        if not paused:
            await self._not_a_listener(sub_id, "resumed")
        if not await self._store.subscriptions.set_paused(sub_id, paused, now_ms()):
            raise UnknownSubscription(sub_id)
        log.info("subscription.paused" if paused else "subscription.resumed",
                 subscription_id=sub_id)  # fmt: skip
        return await self.lookup(sub_id)

    async def _not_a_listener(self, sub_id: str, done: str) -> None:
        """Refuse what would send a `relay listen` subscription's deliveries from here: its
        URL is the laptop's, reached only through its listener's stream."""
        if await self._store.listeners.last_seen(sub_id) is not None:
            raise InvalidSubscription(f"a relay listen subscription cannot be {done}")

    async def send_test(self, sub_id: str) -> TestSent:
        """A synthetic, signed ``relay.test`` event, one attempt now."""
        await self._not_a_listener(sub_id, "tested (send its source a webhook)")
        sub = await self.get(sub_id)
        now = now_ms()
        event_id = new_id("evt", now)
        body = orjson.dumps(
            {"type": TEST_EVENT_TYPE, "event_id": event_id, "subscription_id": sub.id,
             "sent_at": rfc3339(now)}
        )  # fmt: skip
        await self._store.events.store_own(
            event_id=event_id, source=TEST_SOURCE, event_type=TEST_EVENT_TYPE, body=body,
            now_ms=now,
        )  # fmt: skip
        lease = now + self._attempter.lease_ms(DeliveryMode.BEST_EFFORT)
        delivery = NewDelivery(
            new_id("dlv", now), sub.id, DeliveryMode.BEST_EFFORT, lease, inline=True
        )
        added = await self._store.deliveries.add(
            [NewDeliveries(event_id, [delivery])], now, fan_out=False
        )
        # An operator's explicit test goes out now, even while the subscription is paused.
        for ctx in added.inline:
            await self._attempter.attempt(ctx, Trigger.MANUAL)
        result = await self._store.deliveries.get(delivery.id)
        assert result is not None
        if result.status is DeliveryStatus.SUCCEEDED:
            # The receiver answers again: its lane goes now, not when its hold runs out.
            await self._store.lanes.release(sub.id, now_ms())
        return TestSent(event_id, result)

    async def delete(self, sub_id: str) -> None:
        await self._store.subscriptions.delete(await self.lookup(sub_id), now_ms())
        log.info("subscription.deleted", subscription_id=sub_id)
