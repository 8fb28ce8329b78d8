"""Lanes: each subscription's deliveries, waiting in due order, drained by one job at a time.

A lane is ``lane:{sub}`` (waiting, by due ms), ``:flight`` (being attempted, by lease
expiry), ``:state`` (the armed job and backpressure) and, for FIFO subscriptions, ``:heads``
and ``:q:{key}``. Arming a lane writes an ARQ job record; :class:`JobQueue` says where ARQ
keeps them, so this package needs no ARQ import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from relay.domain.breaker import Breaker, BreakerState
from relay.domain.lane_limits import LaneLimits
from relay.domain.lane_states import Claimed, Yielded
from relay.domain.models import Subscription, UnusableSubscription
from relay.storage import subscriptions
from relay.storage.codec import integer, r
from relay.storage.deliveries import FIELDS, DeliveryContext, context_from
from relay.storage.keys import PREFIX, JobQueue, Keys
from relay.storage.scripts import (
    ArmLanes,
    ClaimLane,
    MigrateLanes,
    ReleaseLane,
    Scripts,
    StartLane,
    TakeJobs,
    TrimLanes,
    WakeLane,
    YieldLane,
)

_DELIVERY_FIELDS = len(FIELDS)  # claim_lane.lua returns the same fields, in this order
# claim_lane.lua's reply: status, next due, the subscription (config, enabled, reason), its
# failing clock, the breaker's fields (below), then the deliveries.
_BREAKER_FIELDS = ("tripped", "trips", "hold_until", "bw", "bo", "bf", "po", "pf")
_HEAD = 6 + len(_BREAKER_FIELDS)


def breaker_from(values: Sequence[bytes | None]) -> Breaker:
    """The lane's breaker from its state hash fields (``_BREAKER_FIELDS``, in order)."""
    tripped, trips, hold, bucket, cur_ok, cur_fail, prev_ok, prev_fail = (
        integer(v or None) for v in values
    )
    return Breaker(
        tripped=tripped == 1,
        trips=trips or 0,
        hold_until_ms=hold or 0,
        bucket=-1 if bucket is None else bucket,
        cur_ok=cur_ok or 0,
        cur_fail=cur_fail or 0,
        prev_ok=prev_ok or 0,
        prev_fail=prev_fail or 0,
    )


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim handed out, and when the lane next has something for a worker."""

    status: Claimed
    next_due_ms: int | None
    subscription: Subscription | UnusableSubscription | None
    contexts: list[DeliveryContext]


@dataclass(frozen=True, slots=True)
class Reconciled:
    """Lanes given a job, and which of them were taken from a worker that stopped beating."""

    armed: list[str]
    taken_over: list[str]


@dataclass(frozen=True, slots=True)
class LaneView:
    """A lane as an operator sees it: whether it holds, why, and what waits in it."""

    held_until: int | None  # ms; None: not held
    hold_reason: str | None
    breaker: BreakerState
    backlog: int  # deliveries waiting (FIFO ones behind their key's head included)
    in_flight: int
    recent_failure_rate: float | None  # None: no attempt counted in the breaker's window


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
        limits: LaneLimits,
        *,
        job_id: str = "",
        worker_id: str = "",
    ) -> Claim:
        """Take up to ``want`` due deliveries of a lane, within its ``limits``; the lane's
        armed job ``job_id`` records ``worker_id`` as the lane's holder."""
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
                max_concurrency=limits.max_concurrency,
                rate_limit=limits.rate_limit,
                job_id=job_id,
                worker_id=worker_id,
                probes=limits.probes,
            )
        )
        status, next_due, config, enabled, reason, failing = reply[:6]
        breaker = breaker_from(reply[6:_HEAD])
        sub = subscriptions.from_fields(sub_id, [config or None, enabled, reason, b"0"])
        failing_since = integer(failing)
        contexts = []
        step = 1 + _DELIVERY_FIELDS + 2
        for i in range(_HEAD, len(reply), step):
            delivery_id = reply[i].decode()
            row = [v or None for v in reply[i + 1 : i + 1 + _DELIVERY_FIELDS]]
            meta, body = reply[i + 1 + _DELIVERY_FIELDS], reply[i + 2 + _DELIVERY_FIELDS]
            ctx = context_from(delivery_id, row, meta or None, body, sub, failing_since)
            if ctx is not None:
                contexts.append(replace(ctx, breaker=breaker))
        return Claim(Claimed(status.decode()), integer(next_due), sub, contexts)

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

    async def yield_(self, sub_id: str, job_id: str, now_ms: int, *, exhausted: bool) -> Yielded:
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
        return Yielded(reply[0].decode())

    async def view(self, sub_id: str, now_ms: int) -> LaneView:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(Keys.lane(sub_id, "state"), [*_BREAKER_FIELDS, "hold_reason"])
            pipe.zcard(Keys.lane(sub_id))
            pipe.zcard(Keys.lane(sub_id, "flight"))
            pipe.hkeys(Keys.lane(sub_id, "heads"))
            state, waiting, in_flight, keys = await pipe.execute()
        queued = 0
        if keys:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.llen(Keys.lane(sub_id, "q:" + key.decode()))
                queued = sum(await pipe.execute())
        breaker = breaker_from(state[: len(_BREAKER_FIELDS)])
        held = breaker.hold_until_ms > now_ms
        return LaneView(
            held_until=breaker.hold_until_ms if held else None,
            hold_reason=state[-1].decode() if held and state[-1] else None,
            breaker=breaker.state(now_ms),
            backlog=int(waiting) + queued,
            in_flight=int(in_flight),
            recent_failure_rate=breaker.failure_rate(now_ms),
        )

    async def release(self, sub_id: str, now_ms: int) -> None:
        """End the lane's hold and close its breaker (a subscription test succeeded)."""
        await self._scripts.run(
            ReleaseLane(
                lane_key=Keys.lane(sub_id),
                state_key=Keys.lane(sub_id, "state"),
                queue_key=self._queue.queue_key,
                prefix=PREFIX,
                job_prefix=self._queue.job_prefix,
                sub_id=sub_id,
                now_ms=now_ms,
            )
        )

    async def wake(self, sub_id: str, now_ms: int) -> None:
        """Arm the lane for its earliest waiting delivery (a job that handed the lane on has
        seen its last attempts end)."""
        await self._scripts.run(
            WakeLane(
                lane_key=Keys.lane(sub_id),
                state_key=Keys.lane(sub_id, "state"),
                sub_key=Keys.sub(sub_id),
                queue_key=self._queue.queue_key,
                prefix=PREFIX,
                job_prefix=self._queue.job_prefix,
                sub_id=sub_id,
                now_ms=now_ms,
            )
        )

    async def others_due(self, now_ms: int) -> bool:
        """Whether jobs wait in the queue for a worker now (a running lane job's own entry
        is out of the way, past its lease: start_lane.lua)."""
        due: int = await r(self._redis.zcount(self._queue.queue_key, "-inf", now_ms))
        return due > 0

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
