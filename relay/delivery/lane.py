"""Draining one subscription's lane: the job behind every reliable delivery.

One job at a time per lane (the lane's state says which): it claims as many due deliveries
as the lane's concurrency, rate limit and backpressure allow, sends them concurrently,
records each result as it comes (a failed one goes back into the lane with its next due
time: no slot ever sleeps through a retry wait), claims more as slots free up, and keeps on
while work is due, within a time budget so thousands of lanes share the workers. Then it
asks the lane whether to go on, re-arms it for its next due time, or lets it go idle; that
decision is one atomic step with arming, so no wake-up is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from config.settings import Settings
from relay.delivery.attempt import Attempter
from relay.delivery.connection import UNAVAILABLE
from relay.domain import lane_limits, lane_states
from relay.domain.clock import now_ms
from relay.domain.lane_limits import LaneLimits
from relay.domain.lane_states import Claimed, Step
from relay.domain.models import Attempt, DeliveryMode, Subscription
from relay.observability import metrics
from relay.storage import Claim, Store

log = structlog.get_logger("relay.worker")

# With fewer than half the slots free, a claim still goes out once this long has passed
# since the last: attempts that hang (a receiver taking seconds on some requests) must not
# keep the free slots idle until they end.
_TOP_UP_S = 0.01
# With slots free and attempts in flight, new work is looked for this often.
_FREE_POLL_S = 0.05
# A lane job ends this long before its ARQ job timeout, past its attempts' deadline.
JOB_END_MARGIN_S = 5.0


class LaneRunner:
    def __init__(
        self, store: Store, attempter: Attempter, settings: Settings, worker_id: str = ""
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._attempter = attempter
        self._settings = settings
        self._lease_ms = attempter.lease_ms(DeliveryMode.RELIABLE)
        # Each lane's limits, resolved once per revision of its subscription.
        self._known: dict[str, LaneLimits] = {}

    async def run(self, sub_id: str, job_id: str, ends_by: float | None = None) -> int:
        """Drain the lane until nothing is due or the budget is spent; returns the number of
        attempts made. While no other job waits for a worker, the budget is renewed, up to
        ``ends_by`` (``time.monotonic()``; by default what the job timeout allows after the
        attempts in flight have had their deadline)."""
        loop = asyncio.get_running_loop()
        if ends_by is None:
            ends_by = time.monotonic() + self._settings.job_timeout_s
            ends_by -= self._settings.delivery_timeout_s + JOB_END_MARGIN_S
        # ARQ keeps a running job's in-progress mark this long (its job timeout + 10 s).
        in_progress_ms = int((self._settings.job_timeout_s + 10) * 1000)
        await self._store.lanes.started(sub_id, job_id, now_ms() + in_progress_ms)
        deadline = loop.time() + self._settings.lane_budget_s
        limits = await self._limits(sub_id)
        tasks: set[asyncio.Task[Attempt | None]] = set()
        made = 0
        claimed_at = -_TOP_UP_S
        exhausted = handed_off = False
        try:
            while True:
                if not exhausted and loop.time() >= deadline:
                    # Ending the job costs the lane a pause (a new job waits for a poll):
                    # worth it only when other jobs wait for this worker's time.
                    budget = self._settings.lane_budget_s
                    renew = time.monotonic() + budget <= ends_by
                    if renew and not await self._store.lanes.others_due(now_ms()):
                        deadline = loop.time() + budget
                    else:
                        exhausted = True
                if exhausted and tasks and not handed_off:
                    # Its time is up: a new job takes the lane now, beside the attempts
                    # still in flight here (they count against its limits), rather than
                    # after the slowest of them has ended.
                    handed_off = True
                    await self._store.lanes.yield_(sub_id, job_id, now_ms(), exhausted=True)
                claim: Claim | None = None
                # Refill once half the slots are free, or any free slot after a moment: a
                # claim per finished attempt would cost a Redis round trip per delivery.
                cap = limits.max_concurrency
                free = cap - len(tasks)
                due = len(tasks) <= cap // 2 or loop.time() - claimed_at >= _TOP_UP_S
                if not exhausted and free > 0 and due:
                    claimed_at = loop.time()
                    now = now_ms()
                    claim = await self._store.lanes.claim(
                        sub_id,
                        free,
                        now,
                        now + self._lease_ms,
                        limits,
                        job_id=job_id,
                        worker_id=self._worker_id,
                    )
                    sub = claim.subscription
                    if isinstance(sub, Subscription) and sub.updated_at != limits.revision:
                        # Changed since: its limits apply from the next claim on.
                        limits = self._resolve(sub_id, sub)
                    for ctx in claim.contexts:
                        tasks.add(loop.create_task(self._attempter.attempt(ctx)))
                if tasks:
                    wait = max(0.0, deadline - loop.time()) if not exhausted else None
                    pause = None if claim is None else self._wait_s(claim)
                    if len(tasks) < cap:
                        # Free slots: look again soon for work that came in meanwhile.
                        pause = min(pause or _FREE_POLL_S, _FREE_POLL_S)
                    if pause is not None:
                        wait = min(wait or pause, pause)
                    done, tasks = await asyncio.wait(
                        tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                    )
                    made += len(done)
                    # Attempts record their own outcome; one that could not (Redis away or
                    # full, past its lease) ends this drain, and its claim runs out and is
                    # handed out again. Every error is read, or asyncio logs each one left
                    # unread at exit.
                    errors = [e for task in done if (e := task.exception()) is not None]
                    if errors:
                        raise errors[0]
                    continue
                if handed_off:
                    # What the last attempts put back in the lane goes now, not when the
                    # new job was armed for.
                    await self._store.lanes.wake(sub_id, now_ms())
                    return made
                # Nothing in flight: the claim's status says what next (lane_states).
                pause = None if claim is None else self._wait_s(claim)
                step = Step.YIELD
                if claim is not None:
                    step = lane_states.after_claim(
                        claim.status, in_flight=False, wait_s=pause,
                        budget_left_s=deadline - loop.time(),
                    )  # fmt: skip
                    if claim.status is Claimed.PAUSED:
                        waiting = await self._store.lanes.waiting(sub_id)
                        log.info("lane.paused", subscription_id=sub_id, waiting=waiting)
                if step is Step.CLAIM:
                    continue
                if step is Step.SLEEP and pause is not None:
                    # Others hold the lane's slots, its next token or a short retry is a
                    # moment away: sooner than a new job would start, so wait here.
                    await asyncio.sleep(pause)
                    continue
                decision = await self._store.lanes.yield_(
                    sub_id, job_id, now_ms(), exhausted=exhausted
                )
                if lane_states.after_yield(decision) is Step.STOP:
                    return made
        except UNAVAILABLE:
            # Redis away or full: attempts in flight still record their outcome once it is
            # back (each waits up to its lease), so a receiver that got one does not get it
            # again. Wait for them before the job gives up or drains again.
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            # Cancelled (shutdown past its grace): attempts in flight keep their claims until
            # their leases run out, then the lane hands them out again.
            for task in tasks:
                task.cancel()
            if tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*tasks, return_exceptions=True)

    async def _limits(self, sub_id: str) -> LaneLimits:
        """The lane's limits as last resolved here, or from the stored subscription."""
        known = self._known.get(sub_id)
        if known is not None:
            return known
        found = await self._store.subscriptions.get(sub_id)
        return self._resolve(sub_id, found if isinstance(found, Subscription) else None)

    def _resolve(self, sub_id: str, sub: Subscription | None) -> LaneLimits:
        limits = lane_limits.resolve(
            sub, default_concurrency=self._settings.max_concurrency_per_subscription
        )
        if sub is not None:
            self._known[sub_id] = limits
        return limits

    @staticmethod
    def _wait_s(claim: Claim) -> float | None:
        """How long to wait in this job before claiming again; None: end it instead."""
        due_in = None if claim.next_due_ms is None else (claim.next_due_ms - now_ms()) / 1000
        return lane_states.wait_s(claim.status, due_in)


async def observe_lanes(store: Store, now: int) -> None:
    """Refresh the queue-depth and per-lane gauges from Redis (scrape and heartbeat)."""
    depth = await store.housekeeping.queue_depth(now)
    metrics.observe_queue(
        depth.due,
        depth.scheduled,
        depth.dead,
        [(lane.subscription_id, lane.waiting, lane.in_flight) for lane in depth.lanes],
    )
