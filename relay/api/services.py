"""The per-process objects that requests share, built once in the app's lifespan."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from config.settings import Settings
from relay.api.auth import Authenticator
from relay.delivery.attempt import Attempter
from relay.delivery.connection import UNAVAILABLE, RedisHealth
from relay.delivery.fanout import FanoutBatcher, Planned, SubscriptionCache
from relay.delivery.ingest import Ingestor
from relay.delivery.listen import Listeners
from relay.delivery.preview import Previews
from relay.delivery.replay import Replays
from relay.delivery.subscriptions import Subscriptions
from relay.domain.models import DeliveryMode
from relay.storage import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    ingestor: Ingestor
    attempter: Attempter
    fanout: FanoutBatcher
    subscriptions: Subscriptions
    replays: Replays
    previews: Previews
    # This process's view of Redis: outages, eviction policy, clock.
    health: RedisHealth
    auth: Authenticator
    listeners: Listeners

    @classmethod
    def build(
        cls, settings: Settings, store: Store, attempter: Attempter, health: RedisHealth
    ) -> Services:
        async def attempt_best_effort(planned: Planned) -> None:
            # Best-effort deliveries get their one attempt here, right after fan-out; the
            # lane takes one over only if this process dies before recording it (or Redis
            # goes away first: the claim's lease runs out).
            if planned.inline:
                with contextlib.suppress(*UNAVAILABLE):
                    await attempter.attempt_all(planned.inline)

        subscriptions = Subscriptions(store, attempter, settings)
        return cls(
            settings=settings,
            store=store,
            ingestor=Ingestor(store, settings, health),
            attempter=attempter,
            fanout=FanoutBatcher(
                store,
                SubscriptionCache(store),
                window_s=settings.fanout_batch_window_ms / 1000,
                max_batch=32,
                inline_lease_ms=attempter.lease_ms(DeliveryMode.BEST_EFFORT),
                after_commit=attempt_best_effort,
            ),
            subscriptions=subscriptions,
            replays=Replays(store),
            previews=Previews(store, settings),
            health=health,
            auth=Authenticator(settings, store),
            listeners=Listeners(store, attempter, subscriptions, settings),
        )
