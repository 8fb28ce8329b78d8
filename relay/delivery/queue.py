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
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix

from config.settings import Settings
from relay.delivery.connection import WORKER, RedisHealth, redis_client
from relay.storage import JobQueue

LANE_JOB = "lane"
LEGACY_DELIVER_JOB = "deliver"
# Lane jobs' ids, as lib/lanes.lua arms them: "lane:{subscription id}:{n}".
LANE_JOB_ID_PREFIX = "lane:"


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


def connect(settings: Settings, health: RedisHealth | None = None) -> ArqRedis:
    """ARQ's pool on the worker's connection rules (:mod:`relay.delivery.connection`), set up
    as ``arq.create_pool`` would; it connects on first use, so Redis may still be away."""
    pool = redis_client(settings, WORKER, cls=ArqRedis, health=health)
    pool.job_serializer = serialize
    pool.job_deserializer = deserialize
    pool.default_queue_name = settings.queue_name
    return pool
