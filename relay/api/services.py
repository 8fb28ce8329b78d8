"""The per-process objects that requests share, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis

from config.settings import Settings
from relay.delivery.attempt import Attempter
from relay.delivery.ingest import Ingestor
from relay.delivery.replay import Replays
from relay.delivery.subscriptions import Subscriptions
from relay.storage import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    pool: ArqRedis
    ingestor: Ingestor
    attempter: Attempter
    subscriptions: Subscriptions
    replays: Replays

    @classmethod
    def build(
        cls, settings: Settings, store: Store, pool: ArqRedis, attempter: Attempter
    ) -> Services:
        return cls(
            settings=settings,
            store=store,
            pool=pool,
            ingestor=Ingestor(store, settings),
            attempter=attempter,
            subscriptions=Subscriptions(store, pool, attempter, settings),
            replays=Replays(store, pool),
        )
