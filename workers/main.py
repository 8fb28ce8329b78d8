"""Build and run the ARQ worker from settings.

ARQ rules this honours (arq 0.28): a job timeout is terminal, so ``job_timeout`` is short
but always above one HTTP deadline plus inline retries, and never ``None`` (that makes jobs
run twice); results are not kept and not logged (jobs carry ids only anyway); the
serializer is JSON, never pickle; SIGTERM lets running attempts finish
(``job_completion_wait``) instead of cancelling them mid-request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from typing import Any

import prometheus_client
import structlog
from arq import cron
from arq.connections import ArqRedis
from arq.worker import Worker, func

from config.settings import Settings
from relay.delivery import outbound, queue
from relay.delivery.attempt import Attempter
from relay.domain.clock import now_ms
from relay.observability import metrics
from relay.storage import HEARTBEAT_S, Store
from workers.delivery import deliver
from workers.deps import WorkerDeps
from workers.limits import SubscriptionLimits
from workers.recovery import recover

log = structlog.get_logger("relay.worker")

# A delivery job may be re-run after crashes and while its subscriber is at its concurrency
# cap (Retry); each run re-checks the store, so a generous bound only guards against loops.
DELIVER_MAX_TRIES = 1000


async def _heartbeat(store: Store, worker_id: str) -> None:
    """Our own per-worker liveness for /readyz (ARQ's health key is shared by all workers
    and deleted when any one of them stops). Also refreshes the queue-depth gauge."""
    while True:
        try:
            now = now_ms()
            await store.housekeeping.heartbeat(worker_id, now)
            for state, count in (await store.housekeeping.queue_depth(now)).items():
                metrics.QUEUE_DEPTH.labels(state).set(count)
        except Exception:
            log.warning("worker.heartbeat_failed", worker_id=worker_id, exc_info=True)
        await asyncio.sleep(HEARTBEAT_S)


def build_worker(
    settings: Settings, pool: ArqRedis, *, burst: bool = False, handle_signals: bool = True
) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        store = Store(ctx["redis"], settings.retention_ms)
        client = outbound.make_client(
            settings.worker_max_jobs, settings.delivery_timeout_s, settings.address_guard
        )
        worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        deps = WorkerDeps(
            settings=settings,
            store=store,
            pool=ctx["redis"],
            client=client,
            attempter=Attempter(store, client, settings),
            limits=SubscriptionLimits(settings.max_concurrency_per_subscription),
            worker_id=worker_id,
        )
        deps.heartbeat = asyncio.create_task(_heartbeat(store, worker_id))
        ctx["deps"] = deps
        if settings.worker_metrics_port:
            prometheus_client.start_http_server(settings.worker_metrics_port, settings.host)
        log.info(
            "worker.started",
            worker_id=worker_id,
            queue=settings.queue_name,
            max_jobs=settings.worker_max_jobs,
            metrics_port=settings.worker_metrics_port,
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        deps: WorkerDeps | None = ctx.get("deps")  # None: start-up failed before it was made
        if deps is None:
            log.info("worker.stopped", worker_id=None)
            return
        if deps.heartbeat is not None:
            deps.heartbeat.cancel()
            with contextlib.suppress(Exception):
                await deps.store.housekeeping.forget_worker(deps.worker_id)
        await deps.client.aclose()
        log.info("worker.stopped", worker_id=deps.worker_id)

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
        poll_delay=settings.worker_poll_delay_s,
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
