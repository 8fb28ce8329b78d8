"""The relay's persistence: one :class:`Store` over one Redis client, by aggregate.

    store = Store(redis, job_queue(settings.queue_name), settings.retention_ms)
    await store.sources.get("github")
    await store.deliveries.page(TimeRange(), 50, dead=True)

Each state change that matters is one atomic step (a Lua script in ``lua/`` or a MULTI
transaction), so a process that dies between two lines of Python leaves Redis in a state
that the recovery cron knows how to finish. Keys and hash fields: :mod:`relay.storage.keys`.
"""

from __future__ import annotations

from redis.asyncio import Redis

from relay.storage.deliveries import DeliveryStore
from relay.storage.events import EventStore
from relay.storage.housekeeping import Housekeeping
from relay.storage.keys import JobQueue
from relay.storage.lanes import LaneStore
from relay.storage.listeners import ListenerStore
from relay.storage.ops import OpsStore
from relay.storage.scripts import Scripts
from relay.storage.sessions import SessionStore
from relay.storage.sources import SourceStore
from relay.storage.stats import StatsStore
from relay.storage.subscriptions import SubscriptionStore
from relay.storage.tail import TailStore
from relay.storage.tokens import TokenStore

DEFAULT_RETENTION_MS = 7 * 86_400_000


class Store:
    """Every aggregate over one ``redis.asyncio.Redis`` (``decode_responses=False``).

    ``retention_ms`` is how long events, deliveries and attempts are kept.
    """

    def __init__(
        self, redis: Redis, queue: JobQueue, retention_ms: int = DEFAULT_RETENTION_MS
    ) -> None:
        scripts = Scripts(redis)
        self.sources = SourceStore(redis)
        self.subscriptions = SubscriptionStore(redis, scripts, queue)
        self.events = EventStore(redis, scripts, retention_ms)
        self.deliveries = DeliveryStore(redis, scripts, retention_ms, queue)
        self.lanes = LaneStore(redis, scripts, queue)
        self.housekeeping = Housekeeping(redis, scripts, retention_ms, self.lanes)
        self.stats = StatsStore(redis)
        self.sessions = SessionStore(redis)
        self.tokens = TokenStore(redis)
        self.ops = OpsStore(redis, scripts, retention_ms)
        self.listeners = ListenerStore(redis)
        self.tail = TailStore(redis)
