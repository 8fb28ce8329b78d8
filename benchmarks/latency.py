"""Latency of the relay on this machine, against real parts on 127.0.0.1.

    python benchmarks/latency.py [--requests 1000] [--deliveries 200]

Starts a throwaway Redis (no data dir), ``relay serve`` and ``relay worker`` as subprocesses
and a local receiver, then measures:

1. ``POST /ingest/{source}`` to its 202: sequential requests with a ~300-byte JSON body, then
   a few concurrent clients (throughput); for a plain source and one with an idempotency
   header (a distinct key per request).
2. ``POST`` sent to the request's arrival at an idle receiver, one event at a time, for a
   ``reliable`` subscription (ARQ worker) and a ``best_effort`` one (the API's background
   task), with a breakdown read back from the delivery records.

Everything started here is stopped at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from _procs import (
    CpuMeter,
    admin,
    print_header,
    stop_on_sigterm,
)

from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.processes import relay_command, relay_env, spawn, stop_all, tail
from relay.devtools.receiver import Receiver

BODY_BYTES = 300
IDEMPOTENCY_HEADER = "X-Idempotency-Key"
WARMUP_REQUESTS = 50
WARMUP_DELIVERIES = 5
# Events are spaced by a random pause so they do not lock onto the worker's poll cycle.
MAX_GAP_S = 0.1
TIMEOUT_S = 10.0


# --- statistics ----------------------------------------------------------------------------


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        ordered = sorted(values)
        return cls(
            len(ordered),
            percentile(ordered, 50),
            percentile(ordered, 90),
            percentile(ordered, 99),
            ordered[-1],
        )

    @property
    def tail_ratio(self) -> str:
        return f"{self.p99 / self.p50:.2f}" if self.p50 > 0 else "-"


# --- the stack under test ------------------------------------------------------------------


@dataclass
class Stack:
    base_url: str
    token: str
    redis: EmbeddedRedis
    procs: dict[str, subprocess.Popen[bytes]]
    log_dir: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def pids(self) -> dict[str, int]:
        pids = {name: proc.pid for name, proc in self.procs.items()}
        if self.redis.process is not None:
            pids["redis"] = self.redis.process.pid
        pids["bench"] = os.getpid()
        return pids

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"relay {name} exited with {proc.returncode}\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 20) -> str:
        return tail(self.log_dir / f"{name}.log", lines)


@contextlib.contextmanager
def running_stack(log_dir: Path) -> Iterator[Stack]:
    redis = EmbeddedRedis()  # no data dir: nothing on disk
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        redis.start()
        port = free_port()
        token = "bench_" + secrets.token_urlsafe(18)
        env = relay_env(redis.url, token, port, log_level="WARNING")
        for sub in ("serve", "worker"):
            procs[sub] = spawn(relay_command(sub), env, log_dir / f"{sub}.log")
        stack = Stack(f"http://127.0.0.1:{port}", token, redis, procs, log_dir)
        wait_for_api(stack)
        yield stack
    finally:
        stop_all(procs)
        redis.stop()


def wait_for_api(stack: Stack, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=stack.base_url, trust_env=False, timeout=1.0) as client:
        while time.monotonic() < deadline:
            stack.check_alive()
            with contextlib.suppress(httpx.TransportError):
                if client.get("/api/sources", headers=stack.auth).status_code == 200:
                    return
            time.sleep(0.05)
    raise RuntimeError(f"the API did not answer within {timeout_s} s\n{stack.tail('serve')}")


# --- requests ------------------------------------------------------------------------------


def make_body(seq: int) -> bytes:
    """A JSON body of exactly BODY_BYTES bytes."""
    head = f'{{"type":"bench.event","seq":{seq:08d},"repository":"acme/widgets","data":"'
    tail = '"}'
    return (head + "x" * (BODY_BYTES - len(head) - len(tail)) + tail).encode()


HeaderFn = Callable[[], dict[str, str]]


def no_headers() -> dict[str, str]:
    return {"content-type": "application/json"}


def idem_headers() -> dict[str, str]:
    return {"content-type": "application/json", IDEMPOTENCY_HEADER: uuid.uuid4().hex}


def ingest_sequential(
    client: httpx.Client,
    source: str,
    n: int,
    headers: HeaderFn,
    gap_rng: random.Random | None = None,
) -> list[float]:
    """``n`` POSTs one after the other; with ``gap_rng``, an idle pause before each."""
    latencies: list[float] = []
    path = f"/ingest/{source}"
    for seq in range(n):
        if gap_rng is not None:
            time.sleep(gap_rng.uniform(0, MAX_GAP_S))
        body, hdrs = make_body(seq), headers()
        t0 = time.perf_counter()
        response = client.post(path, content=body, headers=hdrs)
        latencies.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 202:
            raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:200]}")
    return latencies


def ingest_concurrent(
    base_url: str, source: str, total: int, concurrency: int, headers: HeaderFn
) -> tuple[list[float], float]:
    """``total`` requests from ``concurrency`` threads, each with its own keep-alive
    ``httpx.Client``: latencies and wall time.

    Threads with sync clients rather than one ``httpx.AsyncClient``: on this kind of box the
    async client's pool adds stalls of 0.1-1 s of its own under concurrency (encode/httpx#3215),
    which would be measured as server latency.
    """
    path = f"/ingest/{source}"
    todo = iter(range(total))
    lock = threading.Lock()
    ready = threading.Barrier(concurrency + 1)
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []

    def post(client: httpx.Client, seq: int) -> float:
        body, hdrs = make_body(seq), headers()
        t0 = time.perf_counter()
        response = client.post(path, content=body, headers=hdrs)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if response.status_code != 202:
            raise RuntimeError(f"ingest answered {response.status_code}")
        return elapsed_ms

    def client_loop(latencies: list[float]) -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=TIMEOUT_S, trust_env=False) as client:
                post(client, -1)  # open the connection before timing
                ready.wait()
                while True:
                    with lock:  # one shared iterator: the threads share out the requests
                        seq = next(todo, None)
                    if seq is None:
                        return
                    latencies.append(post(client, seq))
        except BaseException as exc:
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=client_loop, args=(lat,), daemon=True) for lat in per_thread]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait(timeout=TIMEOUT_S)
    t0 = time.perf_counter()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError("a concurrent client failed") from errors[0]
    return [x for lat in per_thread for x in lat], elapsed


@dataclass(frozen=True)
class Sent:
    event_id: str
    sent: float  # time.time() just before the POST
    acked: float  # time.time() when the 202 was read
    arrived: float  # receiver's time.time() when it had read the request


def deliver_sequential(
    client: httpx.Client,
    receiver: Receiver,
    source: str,
    count: int,
    rng: random.Random,
) -> list[Sent]:
    sent: list[Sent] = []
    for seq in range(count):
        before = len(receiver.requests)
        t_send = time.time()
        response = client.post(f"/ingest/{source}", content=make_body(seq), headers=no_headers())
        t_ack = time.time()
        if response.status_code != 202:
            raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:200]}")
        event_id: str = response.json()["event_id"]
        got = receiver.wait_for(before + 1, timeout_s=TIMEOUT_S)[before]
        if got.headers.get("webhook-id") != event_id:
            raise RuntimeError(f"receiver got {got.headers.get('webhook-id')}, not {event_id}")
        sent.append(Sent(event_id, t_send, t_ack, got.at))
        time.sleep(rng.uniform(0, MAX_GAP_S))
    return sent


def _ms(rfc3339: str) -> float:
    """The API writes times as RFC 3339 strings, to the millisecond."""
    return datetime.fromisoformat(rfc3339).timestamp() * 1000


def breakdown(client: httpx.Client, auth: dict[str, str], sent: list[Sent]) -> dict[str, Summary]:
    """Where POST→delivery time goes, from the delivery records (ms clocks, so ±1 ms)."""
    parts: dict[str, list[float]] = {
        "POST→202 (client)": [],
        "202→fan-out committed": [],
        "fan-out→attempt start": [],
        "attempt start→receiver": [],
    }
    for s in sent:
        event = client.get(f"/api/events/{s.event_id}", headers=auth).json()
        delivery = event["deliveries"][0]
        detail = client.get(f"/api/deliveries/{delivery['id']}", headers=auth).json()
        created_ms = _ms(delivery["created_at"])
        started_ms = _ms(detail["attempt_log"][0]["started_at"])
        parts["POST→202 (client)"].append((s.acked - s.sent) * 1000)
        parts["202→fan-out committed"].append(created_ms - s.acked * 1000)
        parts["fan-out→attempt start"].append(started_ms - created_ms)
        parts["attempt start→receiver"].append(s.arrived * 1000 - started_ms)
    return {name: Summary.of(values) for name, values in parts.items()}


# --- output --------------------------------------------------------------------------------


def fmt_cpu(used: dict[str, float]) -> str:
    return " ".join(f"{name}={seconds:.1f}" for name, seconds in used.items())


def print_table(title: str, rows: list[tuple[str, Summary, str]], extra_head: str = "") -> None:
    print(f"\n{title}")
    head = f"  {'':38} {'n':>5} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'p99/p50':>7}"
    print(head + (f"  {extra_head}" if extra_head else ""))
    for label, s, extra in rows:
        line = (
            f"  {label:38} {s.n:>5} {s.p50:>7.2f} {s.p90:>7.2f} {s.p99:>7.2f} "
            f"{s.max:>7.2f} {s.tail_ratio:>7}"
        )
        print(line + (f"  {extra}" if extra else ""))


# --- main ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, stack: Stack) -> None:
    rng = random.Random(args.seed)
    meter = CpuMeter(stack.pids())
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(
        base_url=stack.base_url, limits=limits, timeout=TIMEOUT_S, trust_env=False
    ) as client:
        auth = stack.auth
        admin(client, auth, "PUT", "/api/sources/bench")
        admin(
            client,
            auth,
            "PUT",
            "/api/sources/bench-idem",
            idempotency_header=IDEMPOTENCY_HEADER,
        )

        # 1. POST → 202 (no subscriptions yet: fan-out finds nothing to deliver).
        rows: list[tuple[str, Summary, str]] = []
        for label, source, headers in (
            ("sequential, source bench", "bench", no_headers),
            ("sequential, bench-idem (distinct keys)", "bench-idem", idem_headers),
        ):
            ingest_sequential(client, source, WARMUP_REQUESTS, headers)
            meter.start()
            t0 = time.perf_counter()
            lat = ingest_sequential(client, source, args.requests, headers)
            elapsed = time.perf_counter() - t0
            cpu = meter.stop()
            rows.append((label, Summary.of(lat), f"{args.requests / elapsed:7.0f}  {fmt_cpu(cpu)}"))
            stack.check_alive()
        # The same, idle between requests (as in part 2): shows the cost of waking up.
        meter.start()
        lat = ingest_sequential(client, "bench", args.deliveries, no_headers, gap_rng=rng)
        cpu = meter.stop()
        label = f"sequential, bench, 0-{MAX_GAP_S * 1000:.0f} ms idle gaps"
        rows.append((label, Summary.of(lat), f"{'':>7}  {fmt_cpu(cpu)}"))
        for label, source, headers in (
            (f"{args.concurrency} concurrent, source bench", "bench", no_headers),
            (f"{args.concurrency} concurrent, bench-idem", "bench-idem", idem_headers),
        ):
            meter.start()
            lat, elapsed = ingest_concurrent(
                stack.base_url, source, args.concurrent_requests, args.concurrency, headers
            )
            cpu = meter.stop()
            rows.append((label, Summary.of(lat), f"{len(lat) / elapsed:7.0f}  {fmt_cpu(cpu)}"))
            stack.check_alive()
        print_table(
            f"1. POST /ingest/{{source}} → 202, ms ({BODY_BYTES}-byte JSON body, keep-alive)",
            rows,
            "  req/s  CPU s used during the run",
        )

        # 2. POST → arrival at an idle receiver, one event at a time.
        receiver = Receiver()
        try:
            delivery_rows: list[tuple[str, Summary, str]] = []
            parts: dict[str, dict[str, Summary]] = {}
            for mode in ("reliable", "best_effort"):
                sub = admin(
                    client,
                    auth,
                    "POST",
                    "/api/subscriptions",
                    url=receiver.url,
                    sources=["bench"],
                    mode=mode,
                )
                deliver_sequential(client, receiver, "bench", WARMUP_DELIVERIES, rng)
                meter.start()
                sent = deliver_sequential(client, receiver, "bench", args.deliveries, rng)
                cpu = meter.stop()
                admin(client, auth, "DELETE", f"/api/subscriptions/{sub['id']}")
                stack.check_alive()
                total = Summary.of([(s.arrived - s.sent) * 1000 for s in sent])
                acked = Summary.of([(s.acked - s.sent) * 1000 for s in sent])
                extra = f"POST→202 p50 {acked.p50:.2f}  CPU s {fmt_cpu(cpu)}"
                delivery_rows.append((f"{mode}: POST → receiver", total, extra))
                parts[mode] = breakdown(client, auth, sent)
        finally:
            receiver.close()
        print_table(
            "2. POST sent → request at an idle receiver, ms (sequential, "
            f"random 0-{MAX_GAP_S * 1000:.0f} ms gap between events)",
            delivery_rows,
        )
        for mode, summaries in parts.items():
            print_table(
                f"   {mode}: breakdown from the delivery record (ms clocks: ±1 ms)",
                [(name, s, "") for name, s in summaries.items()],
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000, help="sequential ingest requests")
    parser.add_argument("--deliveries", type=int, default=200, help="events per delivery mode")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent ingest clients")
    parser.add_argument(
        "--concurrent-requests", type=int, default=2000, help="requests in the concurrent run"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the gaps between events")
    args = parser.parse_args(argv)

    stop_on_sigterm()
    print_header()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        stack: Stack | None = None
        try:
            with running_stack(Path(tmp)) as stack:
                run(args, stack)
        except BaseException:
            if stack is not None:
                for name in stack.procs:
                    print(f"--- last lines of relay {name} log ---\n{stack.tail(name)}")
            raise
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s; all processes stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
