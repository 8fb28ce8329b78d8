"""The recovery cron: finish what a crash left half done.

- Events accepted but never fanned out (the API died between its 202 and the background
  task) are fanned out once they are older than ``RELAY_FANOUT_GRACE_S``.
- Lanes with work and no live job (a job lost with a Redis restart, a best-effort attempt
  whose API process died, a job that failed) are armed again. A lane whose job exists is
  left alone, unless the worker holding it stopped beating (``HOLDER_STALE_MS``: killed,
  OOM, its host gone): then it gets a fresh job and its attempts in flight are due again,
  so a crashed worker costs seconds rather than ARQ's in-progress timeout (a minute).
- `relay listen` subscriptions whose stream has been gone past ``RELAY_LISTEN_GRACE_S``
  are removed with their lanes (:func:`relay.delivery.listen.sweep`).
- Subscriptions whose backlog or dead letters crossed a threshold, or recovered, are
  reported as operational events (:mod:`relay.delivery.ops`).

Our store is the source of truth and ARQ jobs are only wake-ups: a lost job delays a
delivery, never drops it.
"""

from __future__ import annotations

from typing import Any

import structlog

from relay.delivery import listen, ops
from relay.delivery.connection import UNAVAILABLE
from relay.delivery.fanout import fan_out, stored_event
from relay.domain.clock import now_ms
from relay.storage import HEARTBEAT_S, HOLDER_STALE_MS
from workers.deps import WorkerDeps

log = structlog.get_logger("relay.recovery")


async def recover(ctx: dict[str, Any]) -> dict[str, int]:
    deps = WorkerDeps.of(ctx)
    try:
        return await _recover(deps)
    except UNAVAILABLE:
        # Redis away or full (the outage is logged once): the next run does it all again.
        return {"interrupted": 1}


async def _recover(deps: WorkerDeps) -> dict[str, int]:
    store, settings = deps.store, deps.settings
    now = now_ms()

    fanned = 0
    cutoff = now - int(settings.fanout_grace_s * 1000)
    for event_id in await store.events.unfanned_before(cutoff, settings.recovery_batch):
        try:
            event = await stored_event(store, event_id)
            if event is not None and (await fan_out(store, deps.subscriptions, [event]))[0]:
                fanned += 1
                log.warning("recovery.fanned_out", event_id=event_id)
        except UNAVAILABLE:
            raise
        except Exception:
            # One bad event must not hold up the others, nor the lanes below.
            log.exception("recovery.fanout_failed", event_id=event_id)

    # Right after an outage every worker's heartbeat looks stale until its next beat: take
    # no lane from anyone until they have had the time to beat again.
    steady = deps.health.steady_for_s() * 1000 > HOLDER_STALE_MS + 2 * HEARTBEAT_S * 1000
    cutoff = now - HOLDER_STALE_MS if steady else 0
    lanes = await store.lanes.with_work()
    armed: list[str] = []
    taken: list[str] = []
    for i in range(0, len(lanes), settings.recovery_batch):
        batch = lanes[i : i + settings.recovery_batch]
        done = await store.lanes.reconcile(batch, now, holder_cutoff_ms=cutoff)
        armed += done.armed
        taken += done.taken_over
    if taken:
        log.warning("recovery.lanes_taken_over", lanes=len(taken))
    if armed:
        log.warning("recovery.rearmed", lanes=len(armed))
    removed = await store.housekeeping.trim_indexes(now)
    reported = await ops.watch_thresholds(store, deps.subscriptions, settings, now)
    gone = await listen.sweep(store, settings, now)
    return {"fanned_out": fanned, "rearmed": len(armed), "trimmed": removed, "ops": reported,
            "listeners_removed": len(gone)}  # fmt: skip
