"""The ARQ delivery job: attempts with tenacity backoff, long waits become new jobs.

Short waits (up to ``RELAY_INLINE_RETRY_MAX_S``) are slept inline by tenacity's
``AsyncRetrying``; a longer wait ends the job and queues ``<delivery>:<next attempt>``
deferred by the same policy's delay, so no worker slot sleeps for minutes. ARQ only retries
on ``Retry``; everything else is terminal for it, so this job catches everything and leaves
the decision to the delivery record and the reconciliation cron.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import structlog
from arq import Retry
from structlog.contextvars import bind_contextvars, clear_contextvars
from tenacity import AsyncRetrying, RetryCallState, retry_if_result

from relay.delivery import queue
from relay.delivery.attempt import LEASE_MARGIN_S
from relay.domain.clock import now_ms
from relay.domain.models import Attempt, DeliveryStatus, Trigger
from workers.deps import WorkerDeps

log = structlog.get_logger("relay.worker")


def _wait_s(attempt: Attempt | None) -> float | None:
    """Seconds until the attempt after this one is due; None when none is."""
    if attempt is None or attempt.outcome is not DeliveryStatus.FAILED:
        return None
    if attempt.next_attempt_at is None:
        return None
    return max(0.0, (attempt.next_attempt_at - now_ms()) / 1000)


def _wants_retry(attempt: Attempt | None) -> bool:
    return _wait_s(attempt) is not None


def _planned_wait(state: RetryCallState) -> float:
    assert state.outcome is not None
    return _wait_s(state.outcome.result()) or 0.0


async def deliver(
    ctx: dict[str, Any],
    delivery_id: str,
    attempt: int,
    trigger: str = Trigger.SCHEDULED,
    generation: int = 0,
) -> None:
    """Make attempt ``attempt`` of a delivery, and the short-wait attempts that follow it.

    ``trigger`` (a :class:`Trigger` value: the queue carries JSON) says who asked for the
    first of them: the schedule or an operator. ``generation`` is the delivery's replay
    generation, carried on into the job id of the next attempt.
    """
    deps = WorkerDeps.of(ctx)
    settings = deps.settings
    first_trigger = Trigger(trigger)
    # ARQ runs each job in its own task, so context bound here stays with this job's lines.
    clear_contextvars()
    bind_contextvars(delivery_id=delivery_id)
    try:
        owner = await deps.store.deliveries.owner(delivery_id)
        if owner is None:
            return
        subscription_id, event_id = owner
        bind_contextvars(subscription_id=subscription_id, event_id=event_id)
        if not await deps.limits.acquire(subscription_id):
            # This subscriber already has its share of attempts in flight and waiting: free
            # the worker slot for other subscribers and come back shortly.
            raise Retry(defer=0.5 + random.random())

        loop = asyncio.get_running_loop()
        # Inline retries must leave room for one more full attempt before ARQ's job timeout.
        deadline = (
            loop.time() + settings.job_timeout_s - settings.delivery_timeout_s - LEASE_MARGIN_S
        )

        def stop_inline(state: RetryCallState) -> bool:
            wait = state.upcoming_sleep
            return wait > settings.inline_retry_max_s or loop.time() + wait > deadline

        retrying = AsyncRetrying(
            retry=retry_if_result(_wants_retry),
            wait=_planned_wait,
            stop=stop_inline,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        made: Attempt | None = None
        try:
            async for try_ in retrying:
                number = try_.retry_state.attempt_number
                with try_:
                    made = await deps.attempter.run(
                        delivery_id,
                        attempt + number - 1,
                        first_trigger if number == 1 else Trigger.SCHEDULED,
                        subscription_id,
                    )
                outcome = try_.retry_state.outcome
                if outcome is None or not outcome.failed:
                    try_.retry_state.set_result(made)
        finally:
            deps.limits.release(subscription_id)
        wait = _wait_s(made)
        if made is not None and wait is not None:
            await queue.enqueue_delivery(
                deps.pool, delivery_id, made.number + 1, wait, generation=generation
            )
    except Retry:
        raise
    except Exception:
        # Redis trouble or a bug: the delivery stays due, so reconciliation will run it again.
        log.exception("delivery.job_error", attempt=attempt)
