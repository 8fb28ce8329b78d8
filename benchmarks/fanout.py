"""One event to many subscriptions: how long Redis is held, how fast one worker drains it,
and what it does to another source's ingest, on 127.0.0.1.

    python benchmarks/fanout.py [-n 10000] [--probe 300]

A fresh Redis (append-only file, ``appendfsync everysec``, as in production) with SLOWLOG
recording every command over 1 ms, ``relay serve``, one ``relay worker`` and the fast
receiver of ``_floor.py`` (one server, a path per subscription). ``-n`` subscriptions listen
to the source ``fan``; one listens to ``other``.

1. Idle: ``--probe`` webhooks to ``other``, one after the other: its ingest p50/p99.
2. One webhook to ``fan`` while the same probe runs again to ``other``, until every
   subscription got its delivery: the other source's ingest p50/p99 during the fan-out and
   the drain, the time from the 202 to the last delivery, the deliveries/s of the worker.
3. SLOWLOG, read back: the longest commands (the fan-out's scripts among them), in ms.

Targets (issue 16): longest command <= 50 ms, all delivered by one worker in <= 10 s, the
other source's ingest p99 <= 2x its idle p99.

Everything started here is stopped at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis
from _procs import CpuMeter, print_header, stop_on_sigterm
from throughput import (
    Procs,
    ReceiverClient,
    Relay,
    floor_command,
    log,
    make_body,
    running_relay,
    start_workers,
)

from relay.devtools.embedded_redis import free_port
from relay.storage.keys import Keys
from relay.storage.scripts import source

FAN, OTHER = "fan", "other"
UNFANNED = Keys.unfanned
SLOWLOG_OVER_US = 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def subscribe_many(relay: Relay, receiver_url: str, n: int) -> None:
    """``n`` subscriptions to ``fan``, a path each, made through the API (8 at a time)."""

    def make(chunk: range) -> None:
        with httpx.Client(base_url=relay.base_url, trust_env=False, timeout=30) as client:
            for i in chunk:
                r = client.post(
                    "/api/subscriptions",
                    headers=relay.auth,
                    json={"url": f"{receiver_url}/s/{i}", "sources": [FAN]},
                )
                if r.status_code != 201:
                    raise RuntimeError(f"subscribe answered {r.status_code}: {r.text[:200]}")

    step = -(-n // 8)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, [range(i, min(n, i + step)) for i in range(0, n, step)]))


class Probe(threading.Thread):
    """Webhooks to ``other``, one after the other, until stopped or ``count`` sent."""

    def __init__(self, base_url: str, count: int | None = None) -> None:
        super().__init__(daemon=True)
        self.base_url, self.count = base_url, count
        self.latencies_ms: list[float] = []
        self.started: list[float] = []  # time.monotonic() each request was sent
        self.errors: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        body = make_body()
        with httpx.Client(base_url=self.base_url, trust_env=False, timeout=30) as client:
            while not self.stop.is_set() and (
                self.count is None or len(self.latencies_ms) < self.count
            ):
                self.started.append(time.monotonic())
                t0 = time.perf_counter()
                r = client.post(f"/ingest/{OTHER}", content=body,
                                headers={"content-type": "application/json"})  # fmt: skip
                self.latencies_ms.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 202:
                    self.errors.append(r.status_code)
                time.sleep(0.005)

    def summary(self, since: float = 0.0, until: float = float("inf")) -> str:
        """p50, p99 and max of the requests sent between ``since`` and ``until``."""
        lat = [ms for t, ms in zip(self.started, self.latencies_ms, strict=False)
               if since <= t <= until]  # fmt: skip
        if not lat:
            return "no request"
        text = (f"n={len(lat)} p50 {statistics.median(lat):.1f} ms, "
                f"p99 {percentile(lat, 0.99):.1f} ms, max {max(lat):.1f} ms")  # fmt: skip
        if self.errors:
            text += f"; {len(self.errors)} errors in all ({sorted(set(self.errors))})"
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="subscriptions to fan out to")
    parser.add_argument("--probe", type=int, default=1000, help="idle probe webhooks")
    parser.add_argument("--wait", type=float, default=300.0, help="longest drain wait (s)")
    args = parser.parse_args()
    stop_on_sigterm()
    print_header()
    log_dir = Path(tempfile.mkdtemp(prefix="relay-fanout-"))
    with Procs(log_dir, "fanout") as procs:
        port = free_port()
        procs.spawn("receiver", floor_command("receiver", port), {})
        receiver = ReceiverClient(f"http://127.0.0.1:{port}", procs.check_alive)
        procs.wait_http("receiver", f"{receiver.url}/count", {})
        server = procs.start_redis()
        r = redis.Redis.from_url(server.url)
        r.config_set("slowlog-log-slower-than", SLOWLOG_OVER_US)
        r.config_set("slowlog-max-len", 10_000)
        with running_relay(procs, server.url, log_level="WARNING") as relay:
            for name in (FAN, OTHER):
                relay.put_source(name)
            t0 = time.monotonic()
            subscribe_many(relay, receiver.url, args.n)
            relay.admin("POST", "/api/subscriptions", url=f"{receiver.url}/other", sources=[OTHER])
            log(f"{args.n} subscriptions made in {time.monotonic() - t0:.1f} s")
            start_workers(procs, relay, 1, wait=True)

            idle = Probe(relay.base_url, args.probe)
            idle.start()
            idle.join()
            receiver.reset()
            r.slowlog_reset()

            cpu = CpuMeter({"api": procs.procs["serve"].pid, "worker": procs.procs["worker1"].pid,
                            "redis": server.process.pid if server.process else 0})  # fmt: skip
            cpu.start()
            busy = Probe(relay.base_url)
            busy.start()
            t0 = time.monotonic()
            answer = relay.client.post(f"/ingest/{FAN}", content=make_body(),
                                       headers={"content-type": "application/json"})  # fmt: skip
            assert answer.status_code == 202, answer.text
            accepted = time.monotonic()
            deadline = accepted + args.wait
            first = fanned = None
            while True:
                if fanned is None and r.zscore(UNFANNED, answer.json()["event_id"]) is None:
                    fanned = time.monotonic()
                # The probe's own subscription has one more path, hit from the start.
                paths = max(0, receiver.client.get("/count").json()["paths"] - 1)
                if first is None and paths:
                    first = time.monotonic()
                if paths >= args.n or time.monotonic() > deadline:
                    break
                procs.check_alive()
                time.sleep(0.05)
            done = time.monotonic()
            used = cpu.stop()
            busy.stop.set()
            busy.join()
            slow = r.slowlog_get(10_000)
    print(f"subscriptions: {args.n}")
    print(f"delivered: {paths}/{args.n} in {done - accepted:.2f} s after the 202 "
          f"({paths / max(done - (first or done), 1e-9):.0f}/s from the first)")  # fmt: skip
    per = ", ".join(f"{name} {s:.1f} s ({s / max(paths, 1) * 1e6:.0f} us a delivery)"
                    for name, s in used.items())  # fmt: skip
    print(f"CPU from the 202 to the last delivery: {per}")
    fanned = fanned or done
    print(f"fan-out committed {fanned - accepted:.2f} s after the 202")
    print(f"other source's ingest, idle:              {idle.summary()}")
    print(f"other source's ingest, during the fan-out: {busy.summary(accepted, fanned)}")
    print(f"other source's ingest, during the drain:   {busy.summary()}")
    ratio = percentile(busy.latencies_ms, 0.99) / percentile(idle.latencies_ms, 0.99)
    print(f"  p99 ratio, drain / idle: {ratio:.2f}x")
    slow.sort(key=lambda e: -e["duration"])
    sha = hashlib.sha1(source("fanout").encode()).hexdigest().encode()  # noqa: S324 - Redis's script id
    fanout_calls = [e for e in slow if e["command"].startswith(b"EVALSHA " + sha)]
    if fanout_calls:
        print(f"SLOWLOG: fan-out calls over 1 ms: {len(fanout_calls)}, longest "
              f"{fanout_calls[0]['duration'] / 1000:.1f} ms")  # fmt: skip
    print(f"SLOWLOG: {len(slow)} commands over {SLOWLOG_OVER_US / 1000:.0f} ms; longest:")
    for entry in slow[:5]:
        command = entry["command"]
        text = command.decode(errors="replace") if isinstance(command, bytes) else str(command)
        print(f"  {entry['duration'] / 1000:8.1f} ms  {text[:90]}")
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    main()
