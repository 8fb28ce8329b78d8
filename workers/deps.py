"""What the worker's jobs share, typed: built once at start-up, read by every job.

ARQ hands jobs an untyped ``ctx`` dict; the only thing the relay keeps in it is one
:class:`WorkerDeps`, under ``ctx["deps"]``, so jobs see named, typed dependencies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from arq.connections import ArqRedis

from config.settings import Settings
from relay.delivery.attempt import Attempter
from relay.storage import Store
from workers.limits import SubscriptionLimits


@dataclass
class WorkerDeps:
    settings: Settings
    store: Store
    pool: ArqRedis  # ARQ's own connection: the jobs queue follow-up jobs through it
    client: httpx.AsyncClient
    attempter: Attempter
    limits: SubscriptionLimits
    worker_id: str
    heartbeat: asyncio.Task[None] | None = None

    @staticmethod
    def of(ctx: dict[str, Any]) -> WorkerDeps:
        deps: WorkerDeps = ctx["deps"]
        return deps
