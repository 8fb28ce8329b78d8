"""ARQ as the wake-up transport: which jobs exist, how they are serialised, where ARQ keeps
them.

Jobs carry ids only. The delivery engine has one job kind, ``lane``: one job at a time per
subscription drains its lane (:mod:`relay.delivery.lane`). Lanes are armed from Lua
(``storage/lua/lib/lanes.lua``), which writes the job record exactly as
``ArqRedis.enqueue_job`` does; :func:`job_queue` hands storage ARQ's key names so that
stays true to the pinned arq version. ``deliver`` jobs queued by versions before lanes are
still accepted (they arm the delivery's lane).
"""

from __future__ import annotations

from typing import Any

import orjson
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix

from relay.storage import JobQueue

LANE_JOB = "lane"
LEGACY_DELIVER_JOB = "deliver"


def serialize(value: dict[str, Any]) -> bytes:
    # JSON, not ARQ's default pickle: anyone able to write to Redis could otherwise run code.
    return orjson.dumps(value)


def deserialize(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value


def job_queue(queue_name: str) -> JobQueue:
    return JobQueue(
        queue_key=queue_name, job_prefix=job_key_prefix, in_progress_prefix=in_progress_key_prefix
    )


async def connect(redis_url: str, queue_name: str) -> ArqRedis:
    pool: ArqRedis = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue_name,
    )
    return pool
