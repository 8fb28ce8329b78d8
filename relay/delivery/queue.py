"""ARQ jobs as wake-ups: how the relay names, serialises and enqueues them.

Jobs carry ids only. A job id is ``<delivery id>:<attempt number>`` (``:r<generation>``
added once a delivery was replayed), and ARQ refuses a second job with a live id, so
repeated fan-outs and reconciliation runs never queue the same job twice. Where two jobs
for one attempt do exist (a replay's and one scheduled before it), the store's claim lets
only one of them send.
"""

from __future__ import annotations

from typing import Any

import orjson
from arq.connections import ArqRedis, RedisSettings, create_pool

from relay.domain.models import Trigger

DELIVER_JOB = "deliver"


def serialize(value: dict[str, Any]) -> bytes:
    # JSON, not ARQ's default pickle: anyone able to write to Redis could otherwise run code.
    return orjson.dumps(value)


def deserialize(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value


def job_id(delivery_id: str, attempt: int, generation: int = 0) -> str:
    """``<delivery>:<attempt>``, plus ``:r<generation>`` once a delivery was replayed."""
    return f"{delivery_id}:{attempt}" + (f":r{generation}" if generation else "")


async def connect(redis_url: str, queue_name: str) -> ArqRedis:
    pool: ArqRedis = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue_name,
    )
    return pool


async def enqueue_delivery(
    pool: ArqRedis,
    delivery_id: str,
    attempt: int,
    defer_s: float | None = None,
    *,
    generation: int = 0,
    trigger: Trigger = Trigger.SCHEDULED,
) -> bool:
    """Queue attempt ``attempt`` of a delivery; False when that job already exists.

    A replay starts a new generation, so its job runs now even while a job scheduled before
    the replay still waits; the store's claim lets only one of them make the attempt.
    """
    job = await pool.enqueue_job(
        DELIVER_JOB,
        delivery_id,
        attempt,
        trigger.value,
        generation,
        _job_id=job_id(delivery_id, attempt, generation),
        _defer_by=defer_s if defer_s else None,
    )
    return job is not None
