"""Lanes: each subscription's deliveries, waiting in due order, drained by one job at a time.

A lane is ``lane:{sub}`` (waiting, by due ms), ``:flight`` (being attempted, by lease
expiry), ``:state`` (the armed job and backpressure) and, for FIFO subscriptions, ``:heads``
and ``:q:{key}``. Arming a lane writes an ARQ job record; :class:`JobQueue` says where ARQ
keeps them, so this package needs no ARQ import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from redis.asyncio import Redis

from relay.domain.models import Subscription, UnusableSubscription
from relay.storage import subscriptions
from relay.storage.codec import integer, r
from relay.storage.deliveries import FIELDS, DeliveryContext, context_from
from relay.storage.keys import PREFIX, JobQueue, Keys
from relay.storage.scripts import (
    ArmLanes,
    ClaimLane,
    MigrateLanes,
    Scripts,
    StartLane,
    TakeJobs,
    TrimLanes,
    YieldLane,
)

ClaimStatus = Literal["ok", "empty", "paused", "hold", "rate", "full"]
YieldStatus = Literal["more", "rearmed", "idle", "not_owner"]

_DELIVERY_FIELDS = len(FIELDS)  # claim_lane.lua returns the same fields, in this order


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim handed out, and when the lane next has something for a worker."""

    status: ClaimStatus
    next_due_ms: int | None
    subscription: Subscription | UnusableSubscription | None
    contexts: list[DeliveryContext]


@dataclass(frozen=True, slots=True)
class Reconciled:
    """Lanes given a job, and which of them were taken from a worker that stopped beating."""

    armed: list[str]
    taken_over: list[str]


@dataclass(frozen=True, slots=True)
class LaneDepth:
    subscription_id: str
    waiting: int
    due: int
    in_flight: int


class LaneStore:
    def __init__(self, redis: Redis, scripts: Scripts, queue: JobQueue) -> None:
        self._redis = redis
        self._scripts = scripts
        self._queue = queue

    async def claim(
        self,
        sub_id: str,
        want: int,
        now_ms: int,
        lease_until_ms: int,
        default_cap: int,
        *,
        job_id: str = "",
        worker_id: str = "",
    ) -> Claim:
        """Take up to ``want`` due deliveries of a lane, within its limits; the lane's armed
        job ``job_id`` records ``worker_id`` as the lane's holder."""
        reply = await self._scripts.run(
            ClaimLane(
                lane_key=Keys.lane(sub_id),
                flight_key=Keys.lane(sub_id, "flight"),
                state_key=Keys.lane(sub_id, "state"),
                sub_key=Keys.sub(sub_id),
                failing_key=Keys.sub_failing(sub_id),
                prefix=PREFIX,
                sub_id=sub_id,
                now_ms=now_ms,
                lease_until_ms=lease_until_ms,
                want=want,
                default_cap=default_cap,
                job_id=job_id,
                worker_id=worker_id,
            )
        )
        status, next_due, config, enabled, reason, failing, fails = reply[:7]
        sub = subscriptions.from_fields(sub_id, [config or None, enabled, reason, b"0"])
        failing_since = integer(failing)
        contexts = []
        step = 1 + _DELIVERY_FIELDS + 2
        for i in range(7, len(reply), step):
            delivery_id = reply[i].decode()
            row = [v or None for v in reply[i + 1 : i + 1 + _DELIVERY_FIELDS]]
            meta, body = reply[i + 1 + _DELIVERY_FIELDS], reply[i + 2 + _DELIVERY_FIELDS]
            ctx = context_from(delivery_id, row, meta or None, body, sub, failing_since)
            if ctx is not None:
                contexts.append(replace(ctx, lane_failures=int(fails)))
        return Claim(status.decode(), integer(next_due), sub, contexts)

    async def take_jobs(
        self, job_ids: Sequence[str], now_ms: int, timeout_ms: int
    ) -> list[tuple[str, int]]:
        """Mark these ARQ jobs in progress for this worker, as arq does one by one, in one
        step: the ones taken (due, not running anywhere) and their queue scores."""
        if not job_ids:
            return []
        reply = await self._scripts.run(
            TakeJobs(
                queue_key=self._queue.queue_key,
                in_progress_prefix=self._queue.in_progress_prefix,
                now_ms=now_ms,
                timeout_ms=timeout_ms,
                job_ids=job_ids,
            )
        )
        return [(reply[i].decode(), int(float(reply[i + 1]))) for i in range(0, len(reply), 2)]

    async def started(self, sub_id: str, job_id: str, lease_until_ms: int) -> bool:
        """A lane job is running: its queue entry leaves the head of the queue until
        ``lease_until_ms``, when ARQ would retry it had its worker died. False when another
        job owns the lane now."""
        started = await self._scripts.run(
            StartLane(
                state_key=Keys.lane(sub_id, "state"),
                queue_key=self._queue.queue_key,
                job_id=job_id,
                until_ms=lease_until_ms,
            )
        )
        return bool(started)

    async def yield_(
        self, sub_id: str, job_id: str, now_ms: int, *, exhausted: bool
    ) -> YieldStatus:
        """Keep draining ('more'), or re-arm the lane for later, or let it go idle."""
        reply = await self._scripts.run(
            YieldLane(
                lane_key=Keys.lane(sub_id),
                flight_key=Keys.lane(sub_id, "flight"),
                state_key=Keys.lane(sub_id, "state"),
                heads_key=Keys.lane(sub_id, "heads"),
                sub_key=Keys.sub(sub_id),
                queue_key=self._queue.queue_key,
                lanes_key=Keys.lanes,
                prefix=PREFIX,
                job_prefix=self._queue.job_prefix,
                sub_id=sub_id,
                job_id=job_id,
                now_ms=now_ms,
                exhausted=exhausted,
            )
        )
        status: YieldStatus = reply[0].decode()
        return status

    async def waiting(self, sub_id: str) -> int:
        """Deliveries waiting in a lane (FIFO ones behind a head not counted)."""
        count: int = await r(self._redis.zcard(Keys.lane(sub_id)))
        return count

    async def with_work(self) -> list[str]:
        """Subscription ids whose lane has work."""
        return sorted(i.decode() for i in await r(self._redis.smembers(Keys.lanes)))

    async def arm_idle(self, sub_ids: Sequence[str], now_ms: int) -> list[str]:
        """Arm every lane here that has work and no live job; returns the ones armed."""
        return (await self.reconcile(sub_ids, now_ms, holder_cutoff_ms=0)).armed

    async def reconcile(
        self, sub_ids: Sequence[str], now_ms: int, holder_cutoff_ms: int
    ) -> Reconciled:
        """As :meth:`arm_idle`, and also take a lane from its holder when the holder's last
        heartbeat is older than ``holder_cutoff_ms``: a fresh job, its attempts due again."""
        armed, taken = await self._scripts.run(
            ArmLanes(
                queue_key=self._queue.queue_key,
                workers_key=Keys.workers,
                prefix=PREFIX,
                job_prefix=self._queue.job_prefix,
                in_progress_prefix=self._queue.in_progress_prefix,
                now_ms=now_ms,
                holder_cutoff_ms=holder_cutoff_ms,
                sub_ids=sub_ids,
            )
        )
        return Reconciled([a.decode() for a in armed], [t.decode() for t in taken])

    async def trim_expired(
        self, sub_ids: Sequence[str], cutoff_ms: int, now_ms: int, limit: int = 1000
    ) -> int:
        """Drop from these lanes the ids of deliveries whose records expired (due before
        ``cutoff_ms``); at most ``limit`` per lane. Returns the number dropped."""
        dropped = await self._scripts.run(
            TrimLanes(
                prefix=PREFIX, cutoff_ms=cutoff_ms, now_ms=now_ms, limit=limit, sub_ids=sub_ids
            )
        )
        return int(dropped)

    async def depths(self, now_ms: int) -> list[LaneDepth]:
        """Every lane with work: waiting, due now, in flight."""
        ids = await self.with_work()
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sub_id in ids:
                pipe.zcard(Keys.lane(sub_id))
                pipe.zcount(Keys.lane(sub_id), "-inf", now_ms)
                pipe.zcard(Keys.lane(sub_id, "flight"))
            counts = await pipe.execute()
        return [
            LaneDepth(sub_id, int(counts[3 * n]), int(counts[3 * n + 1]), int(counts[3 * n + 2]))
            for n, sub_id in enumerate(ids)
        ]

    async def migrate_legacy(self, now_ms: int, batch: int = 1000) -> int:
        """Move deliveries written before lanes (the global due index and the sets parked
        by pauses) into their lanes, and arm those lanes. Safe to run on every start: it
        finds nothing once done. Returns the number moved."""
        subs = sorted(s.decode() for s in await r(self._redis.smembers(Keys.subs)))
        moved = 0
        for old in [Keys.legacy_due, *map(Keys.legacy_parked, subs)]:
            left = 1
            while left:
                done, left = await self._scripts.run(
                    MigrateLanes(old_key=old, prefix=PREFIX, limit=batch)
                )
                moved += int(done)
        if moved:
            lanes = await self.with_work()
            for i in range(0, len(lanes), batch):
                await self.arm_idle(lanes[i : i + batch], now_ms)
        return moved
