"""The per-process objects that requests share, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis

from config.settings import Settings
from relay.delivery.attempt import Attempter
from relay.delivery.ingest import Ingestor
from relay.storage.store import RelayStore


@dataclass
class Services:
    settings: Settings
    store: RelayStore
    pool: ArqRedis
    ingestor: Ingestor
    attempter: Attempter
