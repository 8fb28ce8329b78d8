"""Redis memory per event and per delivery, measured on a throwaway redis-server.

    python benchmarks/memory.py [--events 2000] [--body-bytes 1024]

Stores events through the real store (ingest script, fan-out to one subscription, one
recorded attempt each) and reports used_memory growth per event, plus MEMORY USAGE of one
event hash, one delivery hash and one attempt list, including every index entry.
"""

from __future__ import annotations

import argparse
import asyncio

import redis.asyncio as aioredis

from relay.delivery import queue
from relay.devtools.embedded_redis import EmbeddedRedis
from relay.domain.clock import now_ms
from relay.domain.failing import FailingUpdate
from relay.domain.ids import new_id
from relay.domain.models import (
    Attempt,
    DeliveryMode,
    DeliveryStatus,
    SourceIn,
    Subscription,
    Trigger,
)
from relay.storage import NewDeliveries, NewDelivery, NewEvent, Store
from relay.storage.keys import DEFAULT_QUEUE, Keys

HEADERS = {"user-agent": "GitHub-Hookshot/abc123", "x-github-event": "push"}


async def fill(store: Store, events: int, body: bytes, rev: str) -> tuple[str, str]:
    event_id = delivery_id = ""
    for i in range(events):
        now = now_ms()
        event_id = new_id("evt", now)
        event = NewEvent(
            id=event_id, source="bench", source_rev=rev, received_ms=now, event_type="push",
            content_type="application/json", headers=HEADERS, body=body,
            idempotency_key=f"delivery-{i:08d}-0000-0000-000000000000",
        )  # fmt: skip
        await store.events.ingest(event, idempotency_ttl_s=86400)
        delivery = NewDelivery(new_id("dlv", now), "sub_bench", DeliveryMode.RELIABLE, now)
        subs_rev = await store.subscriptions.revision()
        await store.deliveries.add(
            [NewDeliveries(event_id, [delivery])], now, fan_out=True, subs_rev=subs_rev
        )
        ctx = await store.deliveries.context(delivery.id)
        assert ctx is not None
        attempt = Attempt(
            number=1,
            trigger=Trigger.SCHEDULED,
            started_at=now,
            duration_ms=12.5,
            status_code=200,
            error=None,
            error_message=None,
            response_excerpt="ok",
            outcome=DeliveryStatus.SUCCEEDED,
            next_attempt_at=None,
        )
        await store.deliveries.record(
            ctx, attempt, now_ms=now, disable_reason=None, dead_letter=True,
            failing=FailingUpdate("reset"), failing_limit_ms=0, failing_reason="",
        )  # fmt: skip
        delivery_id = delivery.id
    return event_id, delivery_id


async def main(events: int, body_bytes: int) -> None:
    with EmbeddedRedis() as server:
        redis = aioredis.Redis.from_url(server.url)
        store = Store(redis, queue.job_queue(DEFAULT_QUEUE))
        await store.sources.put("bench", SourceIn(), now_ms())
        # A real subscription: events of a source nobody subscribes to skip fan-out entirely.
        now = now_ms()
        sub = Subscription(
            id="sub_bench",
            secret="whsec_bench",  # noqa: S106 - a throwaway store, never sent anywhere
            created_at=now,
            updated_at=now,
            url="https://example.com/hook",
            sources=["bench"],
        )
        await store.subscriptions.create(sub)
        found = await store.sources.get("bench")
        assert found is not None
        body = (b'{"payload":"' + b"x" * body_bytes)[: body_bytes - 2] + b'"}'
        before = (await redis.info("memory"))["used_memory"]
        event_id, delivery_id = await fill(store, events, body, found[1])
        after = (await redis.info("memory"))["used_memory"]
        per_event = (after - before) / events
        usage = {
            "event metadata": await redis.memory_usage(Keys.event(event_id)),
            "event body": await redis.memory_usage(Keys.event_body(event_id)),
            "event's delivery list": await redis.memory_usage(Keys.event_deliveries(event_id)),
            "delivery hash": await redis.memory_usage(Keys.delivery(delivery_id)),
            "attempt list (1 attempt)": await redis.memory_usage(Keys.attempts(delivery_id)),
        }
        await redis.aclose()
    print(f"events: {events}, body: {len(body)} bytes, one delivery and one attempt each")
    print(f"used_memory growth per event, all keys and indexes: {per_event:,.0f} bytes")
    print(f"  of which the body itself:                          {len(body):,} bytes")
    print(
        f"  overhead per event beyond the body:                {per_event - len(body):,.0f} bytes"
    )
    for name, size in usage.items():
        print(f"MEMORY USAGE {name:<30} {size:,} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--body-bytes", type=int, default=1024)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.body_bytes))
