"""The recovery cron: finish what a crash left half done.

- Events accepted but never fanned out (the API died between its 202 and the background
  task) are fanned out once they are older than ``RELAY_FANOUT_GRACE_S``.
- Deliveries that are due but have no live job (a job lost with a crashed worker, an expired
  key, a Redis restart) are queued again. ARQ refuses a job id that is still live, so a
  delivery that does have its job is left alone.

Our store is the source of truth and ARQ jobs are only wake-ups: a lost job delays a
delivery, never drops it.
"""

from __future__ import annotations

from typing import Any

import structlog

from relay.delivery.fanout import fan_out, requeue_due
from relay.domain.clock import now_ms
from workers.deps import WorkerDeps

log = structlog.get_logger("relay.recovery")


async def recover(ctx: dict[str, Any]) -> dict[str, int]:
    deps = WorkerDeps.of(ctx)
    store, settings = deps.store, deps.settings
    now = now_ms()

    fanned = 0
    cutoff = now - int(settings.fanout_grace_s * 1000)
    for event_id in await store.events.unfanned_before(cutoff, settings.recovery_batch):
        try:
            if await fan_out(store, deps.pool, event_id) is not None:
                fanned += 1
                log.warning("recovery.fanned_out", event_id=event_id)
        except Exception:
            # One bad event must not hold up the others, nor the re-queueing below.
            log.exception("recovery.fanout_failed", event_id=event_id)

    requeued = await requeue_due(
        store, deps.pool, now - int(settings.reconcile_grace_s * 1000), settings.recovery_batch
    )
    if requeued:
        log.warning("recovery.requeued", deliveries=requeued)
    removed = await store.housekeeping.trim_indexes(now)
    return {"fanned_out": fanned, "requeued": requeued, "trimmed": removed}
