"""Putting deliveries back on the road: a manual retry, an event replay, dead letters.

A retry or dead-letter replay reopens the delivery with a fresh retry window: it is due now
in its lane, which is armed, and its next attempt is marked manual. A delivery leaves the
dead-letter index in the same step, so a bulk replay is safe to repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from relay.delivery import fanout
from relay.domain.clock import now_ms
from relay.domain.models import Delivery, DeliveryStatus, Subscription
from relay.storage import Reopened, Store, TimeRange

log = structlog.get_logger("relay.replay")


class UnknownDelivery(LookupError):
    """No delivery has this id."""


class InFlight(Exception):
    """The delivery has an attempt in flight; a retry now could send it twice."""


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """Which dead letters to act on: oldest first, after ``after``, ``limit`` at most."""

    subscription_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 1000
    after: str | None = None
    # A scoped token's subscriptions: only their dead letters (None: every subscription).
    within: tuple[str, ...] | None = None

    @property
    def window(self) -> TimeRange:
        return TimeRange(self.since_ms, self.until_ms, self.after)


class Replays:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def _reopen(self, delivery: Delivery, *, only_dead: bool) -> bool:
        """A fresh retry window and a manual attempt now; False if it was not dead (bulk)
        or is gone."""
        reopened = await self._store.deliveries.reopen(
            delivery.id, delivery.subscription_id, now_ms(), only_dead=only_dead
        )
        if reopened is Reopened.IN_FLIGHT:
            raise InFlight(delivery.id)
        if isinstance(reopened, Reopened):
            return False
        attempts, _ = reopened
        log.info(
            "delivery.retry_requested",
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            subscription_id=delivery.subscription_id,
            attempt=attempts + 1,
        )
        return True

    async def retry(self, delivery_id: str) -> Delivery:
        """A manual attempt now, whatever the status (dead included)."""
        delivery = await self._store.deliveries.get(delivery_id)
        if delivery is None or not await self._reopen(delivery, only_dead=False):
            raise UnknownDelivery(delivery_id)
        reopened = await self._store.deliveries.get(delivery_id)
        assert reopened is not None
        return reopened

    async def dead(self, which: DeadLetters) -> list[Delivery]:
        """Dead deliveries matching the filter, oldest first, ``limit`` at most."""
        page = await self._store.deliveries.page(
            which.window, which.limit, subscription_id=which.subscription_id,
            within=which.within, dead=True, oldest_first=True,
        )  # fmt: skip
        deliveries = await self._store.deliveries.get_many(page.ids)
        return [d for d in deliveries if d.status is DeliveryStatus.DEAD]

    async def count_dead(self, which: DeadLetters) -> int:
        window = TimeRange(which.since_ms, which.until_ms)
        return await self._store.deliveries.count_dead(window, which.subscription_id, which.within)

    async def replay_dead(self, which: DeadLetters) -> tuple[int, int, str | None]:
        """Re-queue dead letters: how many, how many remain dead, the last one looked at."""
        dead = await self.dead(which)
        requeued = 0
        for delivery in dead:
            requeued += await self._reopen(delivery, only_dead=True)
        remaining = await self.count_dead(which)
        log.info("dead_letters.replayed", requeued=requeued, remaining=remaining,
                 subscription_id=which.subscription_id)  # fmt: skip
        return requeued, remaining, dead[-1].id if dead else None

    async def purge_dead(self, which: DeadLetters) -> int:
        """Take dead letters out of the index (their records expire as usual)."""
        purged = 0
        while batch := await self.dead(which):
            purged += await self._store.deliveries.forget_dead(batch)
        log.info("dead_letters.purged", purged=purged, subscription_id=which.subscription_id)
        return purged

    async def replay_event(
        self,
        event_id: str,
        subscription_ids: Sequence[str] | None,
        within: Callable[[Subscription], bool] | None = None,
    ) -> list[Delivery] | None:
        """New deliveries of a stored event, with the same ``webhook-id``: to the
        subscriptions named, or to every one that matches it now and is ``within`` the
        caller's scope (None: no such event)."""
        made = await fanout.replay(self._store, event_id, subscription_ids, within)
        if made is None:
            return None
        return await self._store.deliveries.get_many([d.id for d in made])
