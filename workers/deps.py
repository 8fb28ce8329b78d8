"""What the worker's jobs share, typed: built once at start-up, read by every job.

ARQ hands jobs an untyped ``ctx`` dict; the only thing the relay keeps in it is one
:class:`WorkerDeps`, under ``ctx["deps"]``, so jobs see named, typed dependencies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from config.settings import Settings
from relay.delivery.connection import RedisHealth
from relay.delivery.fanout import SubscriptionCache
from relay.delivery.lane import LaneRunner
from relay.delivery.outbound import Sender
from relay.storage import Store


@dataclass
class WorkerDeps:
    settings: Settings
    store: Store
    sender: Sender
    lanes: LaneRunner
    subscriptions: SubscriptionCache  # for the recovery cron's fan-out
    worker_id: str
    heartbeat: asyncio.Task[None] | None = None
    watch: asyncio.Task[None] | None = None  # relay.delivery.redis_watch
    # False once the worker stops taking new jobs (SIGTERM: it finishes what it runs).
    picking: bool = True
    # The worker's view of Redis (outages), shared by its clients.
    health: RedisHealth = field(default_factory=RedisHealth)

    @staticmethod
    def of(ctx: dict[str, Any]) -> WorkerDeps:
        deps: WorkerDeps = ctx["deps"]
        return deps
