"""Operational events: telling operators what the relay did on its own (see
:mod:`relay.domain.ops`).

The steps that cause them write them, atomically (an attempt that kills its delivery or
disables its subscription; the threshold watch, run by the recovery cron); then whoever
wrote them fans them out at once, to the subscriptions that list ``_relay.ops``. If that
process dies first, they wait in the "not fanned out yet" index for the recovery cron.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from config.settings import Settings
from relay.delivery.fanout import SubscriptionCache, fan_out, stored_event
from relay.domain import ops
from relay.storage import Store, Thresholds

log = structlog.get_logger("relay.ops")

THRESHOLD_TYPES = (
    ops.BACKLOG_EXCEEDED,
    ops.BACKLOG_RECOVERED,
    ops.DEAD_LETTERS_EXCEEDED,
    ops.DEAD_LETTERS_RECOVERED,
)


async def publish(store: Store, cache: SubscriptionCache, event_ids: Sequence[str]) -> None:
    """Log and fan out operational events just written; a failure is left to the cron."""
    try:
        events = [e for e in [await stored_event(store, i) for i in event_ids] if e]
        for event in events:
            log.info("ops.event", ops_event_id=event.id, ops_event_type=event.event_type)
        await fan_out(store, cache, events)
    except Exception:
        log.exception("ops.fanout_failed", ops_event_ids=list(event_ids))


async def watch_thresholds(
    store: Store, cache: SubscriptionCache, settings: Settings, now_ms: int
) -> int:
    """One pass over every subscription's backlog and dead letters; the number of events."""
    backlog, dead = settings.ops_backlog_threshold, settings.ops_dead_letter_threshold
    if not backlog and not dead:
        return 0
    subs = await cache.fresh()
    # An operator's own endpoint is left out: its backlog would report on itself.
    watched = [s.id for s in subs if ops.OPS_SOURCE not in s.sources]
    limits = Thresholds(backlog, ops.recovery_mark(backlog), dead, ops.recovery_mark(dead))
    emitted = await store.ops.watch_thresholds(
        watched, limits, ops.OPS_SOURCE, THRESHOLD_TYPES, now_ms
    )
    if emitted:
        await publish(store, cache, emitted)
    return len(emitted)
