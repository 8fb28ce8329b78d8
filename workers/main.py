"""Build and run the ARQ worker from settings.

ARQ rules this honours (arq 0.28): a job timeout is terminal, so ``job_timeout`` is short
but always above one HTTP deadline plus inline retries, and never ``None`` (that makes jobs
run twice); results are not kept and not logged (jobs carry ids only anyway); the
serializer is JSON, never pickle; SIGTERM lets running attempts finish
(``job_completion_wait``) instead of cancelling them mid-request.
"""

from __future__ import annotations

from typing import Any

import structlog
from arq import cron
from arq.connections import ArqRedis
from arq.worker import Worker, func

from config.settings import Settings
from relay import outbound, queue
from relay.attempt import Attempter
from relay.store import RelayStore
from workers.delivery import deliver
from workers.limits import SubscriptionLimits
from workers.recovery import recover

log = structlog.get_logger("relay.worker")

# A delivery job may be re-run after crashes and while its subscriber is at its concurrency
# cap (Retry); each run re-checks the store, so a generous bound only guards against loops.
DELIVER_MAX_TRIES = 1000


def build_worker(
    settings: Settings, pool: ArqRedis, *, burst: bool = False, handle_signals: bool = True
) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        store = RelayStore(ctx["redis"])
        client = outbound.make_client(settings.worker_max_jobs, settings.delivery_timeout_s)
        ctx.update(
            settings=settings,
            store=store,
            client=client,
            attempter=Attempter(store, client, settings),
            limits=SubscriptionLimits(settings.max_concurrency_per_subscription),
        )
        log.info("worker.started", queue=settings.queue_name, max_jobs=settings.worker_max_jobs)

    async def shutdown(ctx: dict[str, Any]) -> None:
        client = ctx.get("client")
        if client is not None:
            await client.aclose()
        log.info("worker.stopped")

    every = settings.recovery_interval_s
    return Worker(
        functions=[
            func(deliver, name=queue.DELIVER_JOB, max_tries=DELIVER_MAX_TRIES, keep_result=0)
        ],
        cron_jobs=[
            cron(
                recover,
                name="recover",
                second=set(range(0, 60, every)),
                run_at_startup=True,
                unique=True,
                timeout=max(settings.job_timeout_s, 60),
                keep_result=0,
            )
        ],
        redis_pool=pool,
        queue_name=settings.queue_name,
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        job_completion_wait=settings.job_timeout_s if handle_signals else 0,
        max_jobs=settings.worker_max_jobs,
        job_timeout=settings.job_timeout_s,
        keep_result=0,
        poll_delay=0.1,
        max_tries=DELIVER_MAX_TRIES,
        job_serializer=queue.serialize,
        job_deserializer=queue.deserialize,
        log_results=False,
    )


async def run_worker(settings: Settings, *, handle_signals: bool = True) -> None:
    pool = await queue.connect(settings.require_redis_url(), settings.queue_name)
    worker = build_worker(settings, pool, handle_signals=handle_signals)
    try:
        await worker.async_run()
    finally:
        await worker.close()
