"""One subscription, a receiver that fails now and then: does its lane keep its throughput?

    python benchmarks/flaky_receiver.py [--rate 100] [--duration 60] [--fail 0.2] [--hang 0.05]

``relay serve`` and ``relay worker`` (one each) and a fresh Redis on 127.0.0.1; a receiver
that answers 503 (no Retry-After) to ``--fail`` of the requests at random and hangs 2 s (then
200) on ``--hang`` of them. Webhooks are offered at ``--rate`` per second for ``--duration``
seconds, each stamped with when it was accepted. Printed: deliveries per second over the
offered period, first-try latency (acceptance to the receiver's first sight of it) p50/p99,
the lane-wide holds seen (the lane's ``hold_until`` read every 50 ms from Redis: each new
value is a hold), the longest gap between two requests at the receiver while webhooks were
offered, and how long the backlog took to drain after the last webhook. Targets (issue
16): at 100/s, >= 95/s delivered, first-try p99 <= 1 s, zero lane-wide holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from _procs import stop_on_sigterm

from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.processes import ProcessGroup, relay_command, relay_env

HANG_S = 2.0


@dataclass
class Seen:
    """What the receiver saw: first sight and success of each webhook, every arrival."""

    arrivals: list[float] = field(default_factory=list)
    first_seen: dict[int, float] = field(default_factory=dict)
    delivered: dict[int, float] = field(default_factory=dict)
    accepted: dict[int, float] = field(default_factory=dict)
    send_errors: int = 0


async def serve_receiver(
    port: int, seen: Seen, fail: float, hang: float, rng: random.Random
) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                now = time.time()
                seq = json.loads(body)["seq"]
                seen.arrivals.append(now)
                seen.first_seen.setdefault(seq, now)
                roll = rng.random()
                status = b"200 OK"
                if roll < hang:
                    await asyncio.sleep(HANG_S)
                elif roll < hang + fail:
                    status = b"503 Service Unavailable"
                if status.startswith(b"200"):
                    seen.delivered.setdefault(seq, time.time())
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def offer(base: str, rate: float, duration_s: float, seen: Seen) -> None:
    """POST ``rate`` webhooks a second for ``duration_s``, paced, each on its own task."""
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=base, trust_env=False, timeout=30, limits=limits
    ) as client:

        async def one(seq: int) -> None:
            # As a provider would: once more on a connection the server had just closed.
            for _ in range(3):
                try:
                    response = await client.post(
                        "/ingest/bench",
                        content=json.dumps({"seq": seq}).encode(),
                        headers={"X-GitHub-Event": "push", "content-type": "application/json"},
                    )
                except httpx.TransportError:
                    seen.send_errors += 1
                    continue
                if response.status_code == 202:
                    seen.accepted[seq] = time.time()
                return

        start = time.monotonic()
        tasks = []
        for seq in range(int(rate * duration_s)):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(seq)))
        await asyncio.gather(*tasks)


async def watch_holds(redis_url: str, sub_id: str, stop: asyncio.Event) -> set[bytes]:
    client = aioredis.Redis.from_url(redis_url)
    holds: set[bytes] = set()
    try:
        while not stop.is_set():
            hold = await client.hget(f"relay:lane:{sub_id}:state", "hold_until")
            if hold and int(hold) > time.time() * 1000:
                holds.add(hold)
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    return holds


async def report_progress(seen: Seen, started: float) -> None:
    """A line on stderr every 10 s: a long run shows where it is."""
    while True:
        await asyncio.sleep(10)
        print(f"{time.time() - started:5.0f} s: accepted {len(seen.accepted)}, delivered "
              f"{len(seen.delivered)}", file=sys.stderr)  # fmt: skip


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def run(args: argparse.Namespace, workdir: Path) -> None:
    redis = EmbeddedRedis().start()
    group = ProcessGroup(workdir, "relay")
    try:
        token = "bench_" + secrets.token_urlsafe(18)
        port = free_port()
        env = relay_env(redis.url, token, port, log_level="WARNING")
        group.spawn("api", relay_command("serve"), env)
        group.spawn("worker", relay_command("worker"), env)
        base = f"http://127.0.0.1:{port}"
        group.wait_http("api", f"{base}/healthz")
        seen = Seen()
        receiver_port = free_port()
        server = await serve_receiver(
            receiver_port, seen, args.fail, args.hang, random.Random(args.seed)
        )
        auth = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, trust_env=False, headers=auth) as client:
            r = await client.put("/api/sources/bench", json={"event_type_header": "X-GitHub-Event"})
            r.raise_for_status()
            r = await client.post(
                "/api/subscriptions",
                json={
                    "url": f"http://127.0.0.1:{receiver_port}/hook",
                    "sources": ["bench"],
                    **({"max_concurrency": args.max_concurrency} if args.max_concurrency else {}),
                },
            )
            r.raise_for_status()
            sub_id = r.json()["id"]
        group.wait_http("api", f"{base}/readyz")
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_holds(redis.url, sub_id, stop))
        started = time.time()
        progress = asyncio.create_task(report_progress(seen, started))
        await offer(base, args.rate, args.duration, seen)
        offered_until = time.time()
        deadline = offered_until + args.drain_timeout
        while len(seen.delivered) < len(seen.accepted) and time.time() < deadline:
            await asyncio.sleep(0.1)
        drained = time.time()
        stop.set()
        progress.cancel()
        holds = await watcher
        server.close()

        within = sum(1 for t in seen.delivered.values() if t <= offered_until)
        first_try = [
            seen.first_seen[s] - seen.accepted[s] for s in seen.accepted if s in seen.first_seen
        ]
        # While webhooks were offered: after that only retries on their schedule remain.
        arrivals = sorted(a for a in seen.arrivals if started <= a <= offered_until)
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        print(f"offered {len(seen.accepted)} at {args.rate:g}/s for {args.duration:g} s; "
              f"receiver fails {args.fail:.0%} (503), hangs {args.hang:.0%} "
              f"for {HANG_S:g} s")  # fmt: skip
        offered_s = offered_until - started
        # On a busy machine the sender falls behind: this is what the relay was given.
        print(f"offered/s as sent                    {len(seen.accepted) / offered_s:8.1f}")
        print(f"ingest transport errors (resent)     {seen.send_errors:8d}")
        print(f"delivered/s over the offered period  {within / (offered_until - started):8.1f}")
        print(
            f"delivered in all                     {len(seen.delivered):8d} of {len(seen.accepted)}"
        )
        print(f"drained, s after the last webhook    {drained - offered_until:8.1f}")
        p50, p99 = pct(first_try, 50), pct(first_try, 99)
        print(f"first-try latency p50 / p99, s       {p50:8.3f} / {p99:.3f}")
        print(f"lane-wide holds seen                 {len(holds):8d}")
        print(f"longest gap at the receiver, s       {max(gaps, default=0):8.2f}")
    finally:
        group.stop_all()
        redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="webhooks offered per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of offered load")
    parser.add_argument("--fail", type=float, default=0.2, help="share answered 503")
    parser.add_argument("--hang", type=float, default=0.05, help=f"share that hang {HANG_S:g} s")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--max-concurrency", type=int, default=0,
                        help="the subscription's max_concurrency (0: relay default)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    stop_on_sigterm()  # `timeout` or a CI kill still stops the relay and Redis started here
    with (
        tempfile.TemporaryDirectory(prefix="flaky-bench-") as tmp,
        contextlib.suppress(KeyboardInterrupt),
    ):
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
