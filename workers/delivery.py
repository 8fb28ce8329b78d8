"""The ARQ job of the delivery engine: drain one subscription's lane.

Jobs carry a subscription id only. The lane decides everything else (what is due, how many
at once, when to hold back); see :mod:`relay.delivery.lane`. ARQ only retries on ``Retry``,
so this job catches everything: if it fails, the lane stays armed with a job that no longer
exists, and the recovery cron arms it again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars

from relay.delivery.connection import UNAVAILABLE, describe
from relay.delivery.lane import JOB_END_MARGIN_S
from relay.domain.clock import now_ms
from workers.deps import WorkerDeps

log = structlog.get_logger("relay.worker")

_RETRY_DRAIN_S = 1.0


async def lane(ctx: dict[str, Any], subscription_id: str) -> None:
    deps = WorkerDeps.of(ctx)
    # ARQ runs each job in its own task, so context bound here stays with this job's lines.
    clear_contextvars()
    bind_contextvars(subscription_id=subscription_id)
    settings = deps.settings
    # Redis away past the connection's retries: this job waits and drains again rather than
    # end, since ARQ would not run the lane again before its in-progress key expires (job
    # timeout + 10 s). It stops waiting while one more drain still fits in the job timeout.
    ends_by = time.monotonic() + settings.job_timeout_s
    ends_by -= settings.delivery_timeout_s + JOB_END_MARGIN_S
    give_up = ends_by - settings.lane_budget_s
    while True:
        try:
            await deps.lanes.run(subscription_id, ctx["job_id"], ends_by)
            return
        except UNAVAILABLE as exc:
            if time.monotonic() >= give_up:
                # The outage itself is logged once: no traceback per job.
                log.warning("lane.job_interrupted", job_id=ctx["job_id"], error=describe(exc))
                return
            await asyncio.sleep(_RETRY_DRAIN_S)
        except Exception:
            log.exception("lane.job_error", job_id=ctx["job_id"])
            return


async def deliver(ctx: dict[str, Any], delivery_id: str, *_: Any) -> None:
    """A delivery job queued by a version before lanes: its delivery is in a lane now
    (moved at worker start), so this only makes sure that lane has a job."""
    deps = WorkerDeps.of(ctx)
    owner = await deps.store.deliveries.owner(delivery_id)
    if owner is not None:
        await deps.store.lanes.arm_idle([owner[0]], now_ms())
