"""The per-process objects that requests share, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from relay.delivery.attempt import Attempter
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
    listeners: Listeners

    @classmethod
    def build(cls, settings: Settings, store: Store, attempter: Attempter) -> Services:
        async def attempt_best_effort(planned: Planned) -> None:
            # Best-effort deliveries get their one attempt here, right after fan-out; the
            # lane takes one over only if this process dies before recording it.
            if planned.inline:
                await attempter.attempt_all(planned.inline)

        subscriptions = Subscriptions(store, attempter, settings)
        return cls(
            settings=settings,
            store=store,
            ingestor=Ingestor(store, settings),
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
            listeners=Listeners(store, attempter, subscriptions, settings),
        )
