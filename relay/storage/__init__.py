"""Redis persistence: every key, hash field and Lua script, one module per aggregate.

The public surface is :class:`Store` and the value types its aggregates take and return;
keys (:mod:`.keys`) and scripts (:mod:`.scripts`) are internals of this package.
"""

from relay.storage.codec import Page, TimeRange
from relay.storage.deliveries import (
    Added,
    AlreadyRecorded,
    DeliveryContext,
    NewDeliveries,
    NewDelivery,
    NotFannedOut,
    Recorded,
    Reopened,
    RetryWindow,
    StaleSubscriptions,
)
from relay.storage.events import IngestResult, NewEvent
from relay.storage.housekeeping import HEARTBEAT_S, HEARTBEAT_STALE_MS, HOLDER_STALE_MS
from relay.storage.keys import JobQueue
from relay.storage.lanes import Claim, LaneDepth, LaneView
from relay.storage.ops import OpsContext, Thresholds
from relay.storage.stats import MinuteStats
from relay.storage.store import Store
from relay.storage.subscriptions import UnusableRecord

__all__ = [
    "HEARTBEAT_S",
    "HEARTBEAT_STALE_MS",
    "HOLDER_STALE_MS",
    "Added",
    "AlreadyRecorded",
    "Claim",
    "DeliveryContext",
    "IngestResult",
    "JobQueue",
    "LaneDepth",
    "LaneView",
    "MinuteStats",
    "NewDeliveries",
    "NewDelivery",
    "NewEvent",
    "NotFannedOut",
    "OpsContext",
    "Page",
    "Recorded",
    "Reopened",
    "RetryWindow",
    "StaleSubscriptions",
    "Store",
    "Thresholds",
    "TimeRange",
    "UnusableRecord",
]
