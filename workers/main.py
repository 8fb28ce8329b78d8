"""Build and run the ARQ worker from settings.

ARQ rules this honours (arq 0.28): a job timeout is terminal, so ``job_timeout`` is short
but always above a lane's budget plus one HTTP deadline, and never ``None`` (that makes jobs
run twice); results are not kept and not logged (jobs carry ids only anyway); the
serializer is JSON, never pickle; SIGTERM lets running attempts finish
(``job_completion_wait``) instead of cancelling them mid-request, and a stop on a signal is
a normal exit (status 0).

Where ARQ gives up on Redis (its poll loop ends at the first connection error, and the
process with it), :class:`RelayWorker` waits and polls again: the worker rides out a Redis
restart, failover or stall, and waits for Redis at start the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import prometheus_client
import structlog
from arq import cron
from arq.connections import ArqRedis
from arq.worker import Worker, func
from redis.exceptions import WatchError

from config.settings import Settings
from relay.delivery import ops, outbound, queue
from relay.delivery.attempt import Attempter
from relay.delivery.connection import UNAVAILABLE, RedisHealth
from relay.delivery.fanout import SubscriptionCache
from relay.delivery.lane import LaneRunner, observe_lanes
from relay.delivery.redis_watch import RedisWatch
from relay.domain.clock import now_ms
from relay.domain.sharing import jobs_to_take
from relay.observability import tracing
from relay.runtime import settle_after_startup
from relay.storage import HEARTBEAT_S, Store
from workers.delivery import deliver, lane
from workers.deps import WorkerDeps
from workers.recovery import recover

log = structlog.get_logger("relay.worker")

# A job whose worker died is run again by another worker (ARQ counts that as a try); past
# this, the lane is left to the recovery cron, which arms it afresh.
LANE_MAX_TRIES = 5
# While Redis is away (the connection's own retries spent), the poll loop tries this often.
_OUTAGE_POLL_S = 1.0
# The queue-depth gauges read every lane: refreshed every few beats, not on each.
_GAUGES_EVERY = 5
# A stop lets the poll loop end by itself this long before cancelling it.
_STOP_GRACE_S = 5.0
# With Redis away at stop, the tidying up (forgetting this worker) is given this long.
_CLOSE_DURING_OUTAGE_S = 1.0
# Polls in a row, without poll_delay between them, while each starts all the lanes it read.
_EAGER_POLLS = 20
_LANE_PREFIX = queue.LANE_JOB_ID_PREFIX.encode()
# A connection lost while arq watches a job's key surfaces as WatchError, not ConnectionError.
_POLL_OUTAGE = (*UNAVAILABLE, WatchError)


class RelayWorker(Worker):
    """ARQ's worker, riding out Redis outages instead of exiting.

    arq 0.28 lets a Redis error in its poll loop end ``main()``, and the process exits 1:
    nothing is delivered until someone restarts it. Here a poll that finds Redis away waits
    and polls again, and jobs already running carry on. The outage is logged once, by
    :class:`~relay.delivery.connection.RedisHealth`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Lane jobs this worker may still start in the current poll (its fair share).
        self._lane_room = self.queue_read_limit
        self._lanes_started = 0  # lane jobs the current poll started
        self._ids_read = 0  # job ids it read
        self._stopping: asyncio.Task[None] | None = None

    async def main(self) -> None:
        # Before ARQ's start-up reads Redis: waiting here is waiting like a later outage.
        if not await self._through_outages(self.pool.ping):
            return  # stopped while waiting for Redis
        start = self.on_startup
        if start is not None:
            # Start-up writes (a full Redis refuses them though it answers PING): it waits
            # for Redis to take them, as the poll loop does later.
            self.on_startup = None
            self.ctx["redis"] = self.pool
            if not await self._through_outages(lambda: start(self.ctx)):
                return
        await super().main()

    async def _through_outages(self, step: Callable[[], Awaitable[object]]) -> bool:
        """Run ``step`` until Redis lets it through; False if the worker was stopped first."""
        while True:
            try:
                await step()
                return True
            except UNAVAILABLE:
                if self._stopped():
                    return False
                await asyncio.sleep(_OUTAGE_POLL_S)

    def _stopped(self) -> bool:
        return self.burst and self.max_burst_jobs == 0

    async def _poll_iteration(self) -> None:
        try:
            for _ in range(_EAGER_POLLS):
                await self._take_fair_share()
                self._lanes_started = self._ids_read = 0
                await super()._poll_iteration()
                # A poll that read a full page and started lanes from it may have left more
                # due behind them (a fan-out arms thousands at once): read again now rather
                # than after poll_delay, which capped a worker at ~100 lanes a second.
                full = self._ids_read >= self.queue_read_limit
                if not (full and self._lanes_started) or self.job_counter >= self.max_jobs:
                    break
        except _POLL_OUTAGE:
            await asyncio.sleep(_OUTAGE_POLL_S)
        except Exception:
            # Not an outage, and not expected: one line, and the loop goes on. Ending it
            # would stop every lane this worker runs until someone restarts it.
            log.exception("worker.poll_failed")
            await asyncio.sleep(_OUTAGE_POLL_S)

    def _running_lanes(self) -> int:
        return sum(
            1
            for job_id, task in self.tasks.items()
            if job_id.startswith(queue.LANE_JOB_ID_PREFIX) and not task.done()
        )

    async def _take_fair_share(self) -> None:
        """How many lane jobs this poll may start: this worker's share of the busy lanes
        (relay.domain.sharing). Other jobs (the recovery cron, jobs of older versions) are
        not counted and always start."""
        deps: WorkerDeps | None = self.ctx.get("deps")  # None until start-up has run
        if deps is None:
            return
        busy, live = await deps.store.housekeeping.lane_load(now_ms())
        self._lane_room = jobs_to_take(self._running_lanes(), busy, live, self.queue_read_limit)

    def handle_sig(self, signum: signal.Signals) -> None:
        """ARQ's stop, without cancelling the poll loop mid-command. ARQ cancels its main
        task; on Python 3.11 a cancellation that lands while redis-py checks a pooled
        connection (``asyncio.timeout(0)`` in ``can_read_destructive``) can be lost, and the
        stop then hung for good (``relay dev``'s Ctrl-C, about one stop in ten under load).
        Burst mode with nothing left to start ends the loop after its current iteration;
        the cancellation stays as a fallback for a loop that does not get there."""
        self.allow_pick_jobs = False
        self.burst, self.max_burst_jobs = True, 0
        for task in self.tasks.values():
            if not task.done():
                task.cancel()
        main = self.main_task
        if main is not None and not main.done():
            self.loop.call_later(_STOP_GRACE_S, main.cancel)
        if self.on_stop is not None:
            self.on_stop(signal.Signals(signum))

    def handle_sig_wait_for_completion(self, signum: signal.Signals) -> None:
        """A stop on a signal: ARQ stops taking jobs and lets the running ones finish. The
        other workers stop counting this one in their fair share of lanes at once, rather
        than leave lanes for it while it finishes (up to ``job_completion_wait``)."""
        super().handle_sig_wait_for_completion(signum)
        deps: WorkerDeps | None = self.ctx.get("deps")
        if deps is not None and deps.picking:
            deps.picking = False
            # Kept referenced until done; the next heartbeat says the same if this fails.
            self._stopping = asyncio.get_running_loop().create_task(_stop_picking(deps))

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's, but one job's end never ends the worker. arq's poll loop re-raises a
        finished job task's exception (``t.result()``): a job whose own bookkeeping met a
        full or vanished Redis, or a job task that was cancelled, would stop the whole
        worker and every lane it runs, silently for a cancellation. The job's lease runs
        out and it runs again (its lane is re-armed by the reconciliation cron)."""
        try:
            await super().run_job(job_id, score)
        except UNAVAILABLE:
            pass  # the outage is logged once, by RedisHealth
        except asyncio.CancelledError:
            if self._stopped():
                raise  # the worker is stopping: the cancellation is its own
            log.warning("worker.job_cancelled", job_id=job_id)
        except Exception:
            log.exception("worker.job_failed", job_id=job_id)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Lane jobs are taken all at once (``LaneStore.take_jobs``: one Redis step where arq
        spends four round trips on each), up to this worker's share and free slots; the
        others (the recovery cron, jobs of older versions) one at a time by arq. Every id a
        poll reads is looked at, so a job stuck at the head of the queue (in progress on a
        dead worker) does not hide the ones behind it."""
        deps: WorkerDeps | None = self.ctx.get("deps")
        self._ids_read = len(job_ids)
        lanes = [
            raw.decode()
            for raw in job_ids
            if raw.startswith(_LANE_PREFIX) and raw.decode() not in self.tasks
        ]
        if deps is not None and lanes:
            room = min(self._lane_room, self.max_jobs - self.job_counter)
            timeout_ms = int(self.in_progress_timeout_s * 1000)
            taken = await deps.store.lanes.take_jobs(lanes[: max(0, room)], now_ms(), timeout_ms)
            for job_id, score in taken:
                await self.sem.acquire()  # free: room counted the slots in use
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, score))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task
            self._lane_room -= len(taken)
            self._lanes_started += len(taken)
        for raw in job_ids:
            if deps is not None and raw.startswith(_LANE_PREFIX):
                continue
            try:
                await super().start_jobs([raw])
            except _POLL_OUTAGE:
                # arq takes a job slot before it asks Redis whether the job is free, and gives
                # it back only on the answers it expects: each outage would leak one slot.
                self._release_sem_dec_counter_on_complete()
                raise


async def _stop_picking(deps: WorkerDeps) -> None:
    with contextlib.suppress(Exception):
        await deps.store.housekeeping.heartbeat(deps.worker_id, now_ms(), picking=False)


async def _heartbeat(deps: WorkerDeps) -> None:
    """Our own per-worker liveness, for /readyz and for taking a dead worker's lanes (ARQ's
    health key is shared by all workers and deleted when any one of them stops). Also
    refreshes the queue-depth gauges."""
    store, worker_id = deps.store, deps.worker_id
    beats = 0
    while True:
        try:
            now = now_ms()
            await store.housekeeping.heartbeat(worker_id, now, picking=deps.picking)
            if beats % _GAUGES_EVERY == 0:
                await observe_lanes(store, now)
        except UNAVAILABLE:
            pass  # logged once for the whole outage
        except Exception:
            log.warning("worker.heartbeat_failed", worker_id=worker_id, exc_info=True)
        beats += 1
        await asyncio.sleep(HEARTBEAT_S)


def build_worker(
    settings: Settings,
    pool: ArqRedis,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    health: RedisHealth | None = None,
) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        # Redis first: a full or absent Redis makes this run again (RelayWorker.main), and
        # nothing below the two writes is made twice.
        store = Store(ctx["redis"], queue.job_queue(settings.queue_name), settings.retention_ms)
        worker_id = ctx.setdefault(
            "worker_id", f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        moved = await store.lanes.migrate_legacy(now_ms())
        if moved:
            log.warning("worker.migrated_to_lanes", deliveries=moved)
        # The first beat before the first poll: the fair share of lanes counts this worker.
        await store.housekeeping.heartbeat(worker_id, now_ms())
        # Every lane job may have a subscription's full concurrency in flight at once.
        sender = outbound.make_sender(
            settings.worker_max_jobs * settings.max_concurrency_per_subscription,
            settings.address_guard,
        )
        attempter = Attempter(store, sender, settings)
        redis_health = health or RedisHealth()
        deps = WorkerDeps(
            settings=settings,
            store=store,
            sender=sender,
            lanes=LaneRunner(store, attempter, settings, worker_id),
            subscriptions=SubscriptionCache(store),
            worker_id=worker_id,
            health=redis_health,
        )
        deps.heartbeat = asyncio.create_task(_heartbeat(deps))
        watch = RedisWatch(
            store, redis_health, settings, lambda ids: ops.publish(store, deps.subscriptions, ids)
        )
        deps.watch = watch.start()
        ctx["deps"] = deps
        settle_after_startup()
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
        if deps.watch is not None:
            deps.watch.cancel()
        if deps.heartbeat is not None:
            deps.heartbeat.cancel()
            with contextlib.suppress(Exception):
                await deps.store.housekeeping.forget_worker(deps.worker_id)
        await deps.sender.aclose()
        # Spans still waiting for their batch go out before the process ends.
        if tracing.active().enabled:
            await asyncio.to_thread(tracing.active().flush)
        log.info("worker.stopped", worker_id=deps.worker_id)

    every = settings.recovery_interval_s
    return RelayWorker(
        functions=[
            func(lane, name=queue.LANE_JOB, max_tries=LANE_MAX_TRIES, keep_result=0),
            func(deliver, name=queue.LEGACY_DELIVER_JOB, max_tries=LANE_MAX_TRIES, keep_result=0),
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
        # Lane jobs run for seconds: a worker that took every due job in one poll would leave
        # its peers idle. A few per poll still fills 100 slots within half a second.
        queue_read_limit=max(2, settings.worker_max_jobs // 20),
        job_timeout=settings.job_timeout_s,
        keep_result=0,
        poll_delay=settings.worker_poll_delay_s,
        job_serializer=queue.serialize,
        job_deserializer=queue.deserialize,
        log_results=False,
    )


async def run_worker(settings: Settings, *, handle_signals: bool = True) -> None:
    health = RedisHealth.for_settings(settings)
    pool = queue.connect(settings, health)
    worker = build_worker(settings, pool, handle_signals=handle_signals, health=health)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        # ARQ ends a stop on SIGTERM/SIGINT by cancelling its main task: a normal stop.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    finally:
        await _close(worker, health)


async def _close(worker: Worker, health: RedisHealth) -> None:
    """Tidy up after the last job: wait for jobs still running, forget this worker in Redis.
    With Redis away, the forgetting would wait out the connection's retries (about 15 s for
    each command, past the 30 s Kubernetes gives a pod): Redis expires all of it anyway."""
    try:
        if health.down_since is None:
            await worker.close()
            return
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        async with asyncio.timeout(_CLOSE_DURING_OUTAGE_S):
            await worker.close()
    except (*UNAVAILABLE, TimeoutError):
        # Stopped during an outage: nothing left to tidy that Redis would not expire.
        log.info("worker.stopped", redis="unavailable")
