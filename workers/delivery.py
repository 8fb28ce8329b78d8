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
from relay.delivery.attempt import LEASE_MARGIN_S, Attempter, Step
from relay.domain.models import Trigger
from relay.storage.store import RelayStore
from workers.limits import SubscriptionLimits

log = structlog.get_logger("relay.worker")


def _wants_retry(step: Step) -> bool:
    return step.retry_in is not None


def _planned_wait(state: RetryCallState) -> float:
    assert state.outcome is not None
    step: Step = state.outcome.result()
    return step.retry_in or 0.0


async def deliver(
    ctx: dict[str, Any], delivery_id: str, attempt: int, trigger: str = Trigger.SCHEDULED
) -> None:
    """Make attempt ``attempt`` of a delivery, and the short-wait attempts that follow it.

    ``trigger`` says who asked for the first of them: the schedule or an operator.
    """
    store: RelayStore = ctx["store"]
    attempter: Attempter = ctx["attempter"]
    limits: SubscriptionLimits = ctx["limits"]
    settings = attempter.settings
    # ARQ runs each job in its own task, so context bound here stays with this job's lines.
    clear_contextvars()
    bind_contextvars(delivery_id=delivery_id)
    try:
        owner = await store.delivery_owner(delivery_id)
        if owner is None:
            return
        subscription_id, event_id = owner
        bind_contextvars(subscription_id=subscription_id, event_id=event_id)
        if not await limits.acquire(subscription_id):
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
        step: Step | None = None
        try:
            async for try_ in retrying:
                number = try_.retry_state.attempt_number
                with try_:
                    step = await attempter.run(
                        delivery_id,
                        attempt + number - 1,
                        Trigger(trigger) if number == 1 else Trigger.SCHEDULED,
                        subscription_id,
                    )
                outcome = try_.retry_state.outcome
                if outcome is None or not outcome.failed:
                    try_.retry_state.set_result(step)
        finally:
            limits.release(subscription_id)
        if step is not None and step.retry_in is not None:
            await queue.enqueue_delivery(
                ctx["redis"], delivery_id, step.attempt + 1, step.retry_in,
                generation=step.generation,
            )  # fmt: skip
    except Retry:
        raise
    except Exception:
        # Redis trouble or a bug: the delivery stays due, so reconciliation will run it again.
        log.exception("delivery.job_error", attempt=attempt)
