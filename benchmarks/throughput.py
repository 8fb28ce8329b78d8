"""Ingest throughput of the relay against its floors, and delivery drain rate, on 127.0.0.1.

    python benchmarks/throughput.py [-d 8s] [-c 32] [-n 20000]

1. The same load (wrk, else a Python client; ~1 KB JSON body, a distinct X-GitHub-Delivery
   per request) against, one after another, each on a fresh process and a fresh Redis with
   AOF on (``appendfsync everysec``): a bare FastAPI endpoint, the durable-ack floor (that
   endpoint plus one Redis Lua call), and ``relay serve`` with no subscription, with one
   reliable subscription and a worker, and with one best-effort subscription.
2. Drain: N deliveries queued with no worker running, then one worker, then (afresh) two.
3. Redis bytes per event and per pending delivery, while those N deliveries wait.

``--tracing off,1.0,0.1`` measures what OpenTelemetry tracing costs instead: per round, for
each setting in turn (off, or on at that sampling ratio, exporting over OTLP/HTTP to a
collector on 127.0.0.1 that decodes and counts the spans), the reliable-subscription ingest
target (d) and a one-worker drain; each round's figures divided by that round's "off".

Everything started here is stopped at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httptools
import httpx
import redis
import uvloop
from _cpucap import CpuCapError, CpuCaps
from _procs import (
    CpuMeter,
    admin,
    cpu_seconds,
    print_header,
    stop_on_sigterm,
)

from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.otlp_collector import OtlpCollector
from relay.devtools.processes import ProcessGroup, relay_command, relay_env

BODY_BYTES = 1024
SOURCE = "bench"
NOSUB_SOURCE = "nosub"  # as long as SOURCE: key names cost the same bytes in Redis
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
FLOOR_SCRIPT = Path(__file__).with_name("_floor.py")
WRK = "/usr/bin/wrk"
START_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
# A Python-client request that takes longer than this counts as a timeout, as in wrk.
REQUEST_TIMEOUT_S = 10.0


def log(message: str) -> None:
    """Progress, on stderr: stdout carries only the results."""
    print(message, file=sys.stderr, flush=True)


def make_body() -> bytes:
    """A JSON body of exactly BODY_BYTES bytes, shaped like a small GitHub push."""
    head = '{"ref":"refs/heads/main","repository":{"full_name":"acme/widgets"},"commits":"'
    end = '"}'
    return (head + "x" * (BODY_BYTES - len(head) - len(end)) + end).encode()


# --- processes -----------------------------------------------------------------------------


class Procs(ProcessGroup):
    """The processes (and Redis) of one step; all stopped, and their data removed, on exit."""

    def __init__(self, log_dir: Path, label: str) -> None:
        super().__init__(log_dir, label)
        self.redis_server: EmbeddedRedis | None = None

    def __enter__(self) -> Procs:
        return self

    def stop_all(self) -> None:
        super().stop_all()
        if self.redis_server is not None:
            self.redis_server.stop()
            if self.redis_server.data_dir is not None:
                shutil.rmtree(self.redis_server.data_dir, ignore_errors=True)

    def log_summaries(self) -> dict[str, LogSummary]:
        """Of every relay process started (by its log file name), stopped or not."""
        return {
            name: summarize_log(self.log_path(name), self.exit_codes.get(name))
            for name in self.procs
        }

    def start_redis(self) -> EmbeddedRedis:
        # A data dir turns on the append-only file with appendfsync everysec, as in production.
        self.redis_server = EmbeddedRedis(self.log_dir / f"{self.label}-redis").start()
        return self.redis_server


def floor_command(kind: str, port: int, redis_url: str | None = None) -> list[str]:
    cmd = [sys.executable, str(FLOOR_SCRIPT), kind, "--port", str(port)]
    return [*cmd, "--redis-url", redis_url] if redis_url else cmd


# --- the receiver --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    requests: int
    unique: int
    first: float
    last_new: float


class ReceiverClient:
    """The fast receiver in ``_floor.py``, read over HTTP (it runs in its own process)."""

    def __init__(self, url: str, check_alive: Callable[[], None]) -> None:
        self.url = url
        self.check_alive = check_alive  # raises, with its log, if the receiver died
        self.client = httpx.Client(base_url=url, trust_env=False, timeout=HTTP_TIMEOUT_S)

    def close(self) -> None:
        self.client.close()

    def tally(self) -> Tally:
        got = self.client.get("/count").json()
        return Tally(got["requests"], got["unique"], got["first"], got["last_new"])

    def reset(self) -> None:
        self.client.get("/reset").raise_for_status()

    def wait_for(
        self, expected: int, timeout_s: float, check: Callable[[], None], stall_s: float = 0
    ) -> Tally:
        """Until ``expected`` distinct events arrived, ``timeout_s`` passed, or (with
        ``stall_s``) nothing new arrived for that long."""
        deadline = time.monotonic() + timeout_s
        last_change, last_unique = time.monotonic(), -1
        while True:
            got = self.tally()
            now = time.monotonic()
            if got.unique != last_unique:
                last_change, last_unique = now, got.unique
            if got.unique >= expected or now > deadline:
                return got
            if stall_s and now - last_change > stall_s:
                return got
            check()
            self.check_alive()
            time.sleep(0.05)


# --- load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One load run, in wrk's terms: ``completed`` counts every response, non-2xx included."""

    tool: str
    completed: int
    status_errors: int  # responses >= 400
    socket_errors: int  # connect, read, write errors and timeouts
    duration_s: float
    p50_ms: float
    p99_ms: float
    client_cpu_s: float

    @property
    def req_s(self) -> float:
        return self.completed / self.duration_s if self.duration_s else 0.0

    @property
    def ok(self) -> int:
        return self.completed - self.status_errors


WRK_LUA = """-- written by benchmarks/throughput.py
local prefix = "%(prefix)s"
local counter = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)  -- a global in that thread's own Lua state
  threads = threads + 1
end

wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["%(event_header)s"] = "push"

function request()
  counter = counter + 1
  wrk.headers["%(delivery_header)s"] = prefix .. "-" .. tid .. "-" .. counter
  return wrk.format()
end

-- One machine-readable line: exact counts and percentiles from wrk's own histogram.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "status": %%d, "connect": %%d, '
    .. '"read": %%d, "write": %%d, "timeout": %%d, "p50_us": %%.1f, "p99_us": %%.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str, duration_s: float, connections: int, threads: int, body: bytes, work_dir: Path
) -> Load:
    script = work_dir / f"wrk-{secrets.token_hex(4)}.lua"
    script.write_text(
        WRK_LUA
        % {
            # A fresh prefix per run: every request of every run has its own delivery id.
            "prefix": secrets.token_hex(8),
            "body": body.decode(),
            "event_header": EVENT_HEADER,
            "delivery_header": DELIVERY_HEADER,
        }
    )
    cmd = [
        WRK, f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s",
        "--timeout", f"{REQUEST_TIMEOUT_S:g}s", "--latency", "-s", str(script), url,
    ]  # fmt: skip
    cpu_before = children_cpu_s()
    # subprocess.run kills wrk on its timeout and on any exception, Ctrl-C included.
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration_s + 30, start_new_session=True
    )
    cpu = children_cpu_s() - cpu_before
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    got = json.loads(line.removeprefix("WRK_JSON "))
    return Load(
        tool="wrk",
        completed=got["requests"],
        status_errors=got["status"],
        socket_errors=got["connect"] + got["read"] + got["write"] + got["timeout"],
        duration_s=got["duration_us"] / 1e6,
        p50_ms=got["p50_us"] / 1000,
        p99_ms=got["p99_us"] / 1000,
        client_cpu_s=cpu,
    )


class _Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection: one request at a time, httptools parses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    async def send(self, request: bytes) -> int:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("connection closed"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


async def _python_load(
    url: str, duration_s: float, connections: int, body: bytes, max_requests: int | None
) -> Load:
    parts = httpx.URL(url)
    host, port = parts.host, parts.port or 80
    head = (
        f"POST {parts.raw_path.decode()} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\n{EVENT_HEADER}: push\r\n"
        f"Content-Length: {len(body)}\r\n{DELIVERY_HEADER}: {secrets.token_hex(8)}-"
    ).encode()
    seq = itertools.count()
    latencies: list[float] = []
    errors = {"status": 0, "socket": 0}
    loop = asyncio.get_running_loop()
    deadline = time.perf_counter() + duration_s

    async def one_connection() -> None:
        conn: _Connection | None = None
        while time.perf_counter() < deadline:
            n = next(seq)
            if max_requests is not None and n >= max_requests:
                break
            try:
                if conn is None or conn.transport is None or conn.transport.is_closing():
                    _, conn = await loop.create_connection(_Connection, host, port)
                request = head + str(n).encode() + b"\r\n\r\n" + body
                t0 = time.perf_counter()
                status = await asyncio.wait_for(conn.send(request), REQUEST_TIMEOUT_S)
                latencies.append(time.perf_counter() - t0)
                if status >= 400:
                    errors["status"] += 1
            except (OSError, TimeoutError, httptools.HttpParserError):
                errors["socket"] += 1
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else []
    return Load(
        tool="python",
        completed=len(latencies),
        status_errors=errors["status"],
        socket_errors=errors["socket"],
        duration_s=elapsed,
        p50_ms=cuts[49] * 1000 if cuts else 0.0,
        p99_ms=cuts[98] * 1000 if cuts else 0.0,
        client_cpu_s=cpu,
    )


def run_python_load(
    url: str, duration_s: float, connections: int, body: bytes, max_requests: int | None = None
) -> Load:
    """The fallback client (uvloop + httptools, one process): up to ``max_requests``
    requests, stopping after ``duration_s`` whatever the count."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_python_load(url, duration_s, connections, body, max_requests))


@dataclass(frozen=True)
class LoadPlan:
    tool: str  # "wrk" or "python"
    duration_s: float
    warmup_s: float
    connections: int
    threads: int
    body: bytes
    work_dir: Path

    def run(self, url: str, duration_s: float) -> Load:
        if self.tool == "wrk":
            return run_wrk(
                url, duration_s, self.connections, self.threads, self.body, self.work_dir
            )
        return run_python_load(url, duration_s, self.connections, self.body)


# --- the relay -----------------------------------------------------------------------------


@dataclass
class Relay:
    base_url: str
    token: str
    env: dict[str, str]
    client: httpx.Client

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def admin(self, method: str, path: str, **json: Any) -> Any:
        return admin(self.client, self.auth, method, path, **json)

    def put_source(self, name: str) -> None:
        # verification is "none" by default: the load carries no signature.
        self.admin(
            "PUT",
            f"/api/sources/{name}",
            event_type_header=EVENT_HEADER,
            idempotency_header=DELIVERY_HEADER,
        )

    def subscribe(self, receiver_url: str, mode: str, source: str = SOURCE) -> None:
        self.admin("POST", "/api/subscriptions", url=receiver_url, sources=[source], mode=mode)

    def accepted(self, source: str) -> int | None:
        """Events the relay answered 202 for, from its own counter: unlike the client's count,
        it includes requests still in flight when the load tool stopped."""
        metric = re.compile(r"^relay_ingest_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
        total: float | None = None
        for line in self.client.get("/metrics").text.splitlines():
            m = metric.match(line)
            if m and 'outcome="accepted"' in m["labels"] and f'source="{source}"' in m["labels"]:
                total = (total or 0) + float(m["value"])
        return None if total is None else int(total)

    def workers_seen(self) -> int:
        response = self.client.get("/readyz")
        return int(response.json().get("workers", 0)) if response.status_code == 200 else 0


@contextlib.contextmanager
def running_relay(
    procs: Procs, redis_url: str, log_level: str = "INFO", extra_env: dict[str, str] | None = None
) -> Iterator[Relay]:
    port = free_port()
    token = "bench_" + secrets.token_urlsafe(18)
    env = relay_env(redis_url, token, port, log_level=log_level)
    # Tracing is what --tracing says, never what the shell running the benchmark had.
    env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
    env.update(extra_env or {})
    procs.spawn("serve", relay_command("serve"), env)
    base_url = f"http://127.0.0.1:{port}"
    procs.wait_http("serve", f"{base_url}/api/sources", {"Authorization": f"Bearer {token}"})
    with httpx.Client(base_url=base_url, trust_env=False, timeout=HTTP_TIMEOUT_S) as client:
        yield Relay(base_url, token, env, client)


def start_workers(procs: Procs, relay: Relay, count: int, wait: bool) -> None:
    for i in range(count):
        procs.spawn(f"worker{i + 1}", relay_command("worker"), relay.env)
    if not wait:
        return
    deadline = time.monotonic() + START_TIMEOUT_S
    while relay.workers_seen() < count:  # the heartbeat says the worker is polling
        procs.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{procs.label}: no worker heartbeat within {START_TIMEOUT_S} s")
        time.sleep(0.1)


@dataclass(frozen=True)
class LogSummary:
    lines: int
    levels: Counter[str]  # JSON lines by level, plus "traceback" for raw tracebacks
    events: Counter[str]  # warning and error events, and raw tracebacks' exceptions, by name
    exit_code: int | None
    succeeded: int  # "delivery.succeeded" lines: how a drain was shared between workers

    def describe(self) -> str:
        bad = {lvl: n for lvl, n in self.levels.items() if lvl not in ("info", "debug")}
        text = f"{self.lines} lines" + "".join(f", {n} {lvl}" for lvl, n in sorted(bad.items()))
        if self.events:
            top = ", ".join(f"{name} x{n}" for name, n in self.events.most_common(4))
            text += f" ({top})"
        # SIGTERM is how it was stopped: -15, or 0 when it handled the signal.
        if self.exit_code not in (None, 0, -signal.SIGTERM):
            text += f"; exit code {self.exit_code} after SIGTERM"
        return text


def summarize_log(path: Path, exit_code: int | None) -> LogSummary:
    """Counts of the JSON log lines by level; a raw (non-JSON) traceback counts once, by the
    exception on its last line."""
    levels: Counter[str] = Counter()
    events: Counter[str] = Counter()
    lines, succeeded, in_traceback = 0, 0, False
    with path.open(errors="replace") as f:
        for raw in f:
            lines += 1
            try:
                record = json.loads(raw)
                level, name = str(record["level"]), str(record["event"])
            except (ValueError, KeyError, TypeError):
                if raw.startswith("Traceback"):
                    levels["traceback"] += 1
                    in_traceback = True
                elif in_traceback and raw[:1].strip():  # the unindented exception line
                    events[raw.strip()[:60]] += 1
                    in_traceback = False
                continue
            levels[level] += 1
            succeeded += int(name == "delivery.succeeded")
            if level not in ("info", "debug"):
                # uvicorn's "Exception in ASGI application\n": the first line is the name.
                events[name.strip().split("\n", 1)[0][:60]] += 1
    return LogSummary(lines, levels, events, exit_code, succeeded)


# --- targets -------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    label: str
    load: Load
    cpu_us_per_req: str  # server processes' CPU during the measured run, per request
    delivered: str = ""
    logs: dict[str, LogSummary] = field(default_factory=dict)


def measure(plan: LoadPlan, url: str, pids: dict[str, int]) -> tuple[Load, str]:
    """A warm-up run (not counted), then the measured run and the servers' CPU per request."""
    if plan.warmup_s > 0:
        plan.run(url, plan.warmup_s)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    load = plan.run(url, plan.duration_s)
    used: list[str] = []
    for name, pid in pids.items():
        start, end = before[name], cpu_seconds(pid)
        if start is not None and end is not None and load.completed:
            used.append(f"{(end - start) / load.completed * 1e6:.0f}")
    return load, "+".join(used) or "-"


def run_floor(plan: LoadPlan, log_dir: Path, key: str, durable: bool) -> Row:
    label = "durable floor: + 1 Lua call" if durable else "bare FastAPI, 202"
    log(f"[{key}] {label}")
    with Procs(log_dir, key) as procs:
        redis_url = procs.start_redis().url if durable else None
        port = free_port()
        kind = "durable" if durable else "bare"
        server = procs.spawn(kind, floor_command(kind, port, redis_url), dict(os.environ))
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(kind, f"{base}/healthz")
        load, cpu = measure(plan, f"{base}/ingest/{SOURCE}", {"api": server.pid})
        procs.check_alive()
    return Row(key, label, load, cpu)


def run_relay_target(
    plan: LoadPlan,
    log_dir: Path,
    key: str,
    receiver: ReceiverClient,
    mode: str | None,
    delivery_wait_s: float,
    extra_env: dict[str, str] | None = None,
) -> Row:
    label = {
        None: "relay, no subscription",
        "reliable": "relay, reliable sub + 1 worker",
        "best_effort": "relay, best_effort sub + 1 worker",
    }[mode]
    log(f"[{key}] {label}")
    with Procs(log_dir, key) as procs:
        redis_server = procs.start_redis()
        with running_relay(procs, redis_server.url, extra_env=extra_env) as relay:
            relay.put_source(SOURCE)
            pids = {"api": procs.procs["serve"].pid}
            if mode is not None:
                relay.subscribe(receiver.url, mode)
                # A worker runs with both modes, as in production (recovery, reconciliation);
                # best-effort attempts are made by the API itself.
                start_workers(procs, relay, 1, wait=True)
                pids["worker"] = procs.procs["worker1"].pid
                receiver.reset()
            load, cpu = measure(plan, f"{relay.base_url}/ingest/{SOURCE}", pids)
            procs.check_alive()
            delivered = ""
            if mode is not None:
                delivered = wait_delivered(relay, receiver, procs, mode, delivery_wait_s)
    # Read once the processes are stopped: what they log on the way out counts too.
    return Row(key, label, load, cpu, delivered, procs.log_summaries())


def wait_delivered(
    relay: Relay, receiver: ReceiverClient, procs: Procs, mode: str, wait_s: float
) -> str:
    """Delivered/accepted once every accepted event (warm-up included) reached the receiver,
    or when the wait ends; with the time it took after the load stopped."""
    t0 = time.monotonic()
    # Requests in flight when the load tool hung up are still stored (and delivered): read
    # the count once it has stopped moving.
    accepted, last = relay.accepted(SOURCE), -1
    while accepted != last and time.monotonic() - t0 < 5:
        time.sleep(0.2)
        accepted, last = relay.accepted(SOURCE), accepted
    if accepted is None:
        return "accepted count not found in /metrics"
    # A best-effort delivery is tried once: once nothing new arrives, nothing will.
    stall_s = 10.0 if mode == "best_effort" else 0.0
    got = receiver.wait_for(accepted, wait_s, procs.check_alive, stall_s=stall_s)
    text = f"{got.unique}/{accepted} (+{time.monotonic() - t0:.1f} s)"
    if got.requests > got.unique:
        text += f", {got.requests - got.unique} repeats"
    return text


# --- drain and memory ----------------------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    workers: int
    delivered: int
    expected: int
    rate: float  # deliveries/s from the first delivery to the last
    wall_s: float  # from starting the worker processes to the last delivery
    cpu_shares: dict[str, float]  # of one core, by process, from first delivery to last
    logs: dict[str, LogSummary]


@dataclass(frozen=True)
class Memory:
    events: int
    nosub_per_event: float  # used_memory growth per event, no subscription
    sub_per_event: float  # the same with one reliable subscription: one pending delivery each
    amortized: bool  # bucket arrays at their average per key (else as used_memory saw them)

    @property
    def per_delivery(self) -> float:
        return self.sub_per_event - self.nosub_per_event


# The key space's bucket arrays (main and expires tables, 8 B a bucket) double in size
# when they fill up, so the bytes a fill adds jump by megabytes whenever it crosses a power
# of two: 20,000 events once put 140 B more on each delivery than 8,000 or 30,000 did.
# Counted instead at their long-run average: between resizes a table holds 1 to 2 buckets
# per key, 2 ln 2 ≈ 1.39 on average.
_BUCKET_BYTES_PER_KEY = 8 * 2 * math.log(2)
# What MEMORY STATS counts per entry besides buckets (Redis 6 and 7.0, 64-bit): a dictEntry
# (24 B) in both tables, and the value's robj (16 B) in the main one.
_ENTRY_BYTES = {b"overhead.hashtable.main": 40, b"overhead.hashtable.expires": 24}


@dataclass(frozen=True)
class Snapshot:
    used: int  # used_memory, less client buffers and the AOF buffer
    buckets: int  # bytes of the key space's bucket arrays (0: unknown)
    keys: int  # entries in the main and expires tables

    def minus(self, before: Snapshot) -> float:
        """Bytes added since ``before``, bucket arrays at their average per key."""
        grown = self.used - before.used
        if self.buckets and before.buckets:
            grown += (self.keys - before.keys) * _BUCKET_BYTES_PER_KEY
            grown -= self.buckets - before.buckets
        return grown


def _bucket_bytes(r: redis.Redis) -> tuple[int, int]:
    """(bucket array bytes, entries) of db 0's main and expires tables, from MEMORY STATS
    (entries * _ENTRY_BYTES + buckets * 8); (0, entries) when the figure is not made that
    way (a table's size is a power of two, or two of them during a rehash)."""
    stats = cast(list[Any], r.execute_command("MEMORY", "STATS"))
    db = dict(zip(stats[::2], stats[1::2], strict=True)).get(b"db.0") or []
    overhead = dict(zip(db[::2], db[1::2], strict=True))
    space = cast(dict[str, Any], r.info("keyspace")).get("db0", {})
    keys, expires = int(space.get("keys", 0)), int(space.get("expires", 0))
    buckets = 0
    for name, entries in ((b"overhead.hashtable.main", keys),
                          (b"overhead.hashtable.expires", expires)):  # fmt: skip
        slots, rest = divmod(int(overhead.get(name, 0)) - entries * _ENTRY_BYTES[name], 8)
        if rest or slots < 0 or (entries and not slots) or bin(slots).count("1") > 2:
            return 0, keys + expires
        buckets += 8 * slots
    return buckets, keys + expires


def settled_memory(r: redis.Redis, timeout_s: float = 15.0) -> Snapshot:
    """Memory once fan-out (after each 202, in the API) has stopped writing keys, less
    client buffers and the AOF buffer.

    Those two are not data: the query buffers grow with the number of connections the API's
    pool has opened (≈ 280 KB after the first 1500 events at 8 concurrent clients), which
    would count as ≈ 190 B per event at N=1500 and twice that at N=500.
    """
    deadline = time.monotonic() + timeout_s
    last, stable = -1, 0
    while time.monotonic() < deadline and stable < 3:
        size = cast(int, r.dbsize())
        stable = stable + 1 if size == last else 0
        last = size
        time.sleep(0.2)
    info = cast(dict[str, int], r.info("memory"))
    not_data = sum(info.get(name, 0) for name in ("mem_clients_normal", "mem_aof_buffer"))
    buckets, keys = _bucket_bytes(r)
    return Snapshot(info["used_memory"] - not_data, buckets, keys)


def ingest_exactly(relay: Relay, source: str, n: int, connections: int, body: bytes) -> int:
    """``n`` events, bounded in time; returns how many the relay accepted."""
    before = relay.accepted(source) or 0
    run_python_load(f"{relay.base_url}/ingest/{source}", 120.0, connections, body, n)
    return (relay.accepted(source) or 0) - before


def fill_queue(
    relay: Relay,
    r: redis.Redis,
    receiver: ReceiverClient,
    n: int,
    connections: int,
    body: bytes,
    with_memory: bool,
    lanes: int,
) -> tuple[int, Memory | None]:
    """``n`` events spread over ``lanes`` subscribed sources (one subscription each, so one
    lane each) with no worker running (with ``with_memory``, ``n`` for a source with no
    subscription first); how many were accepted, and memory."""
    nosub = 0
    m0 = m1 = Snapshot(0, 0, 0)
    if with_memory:
        relay.put_source(NOSUB_SOURCE)
        m0 = settled_memory(r)
        nosub = ingest_exactly(relay, NOSUB_SOURCE, n, connections, body)
        m1 = settled_memory(r)
    sources = [f"{SOURCE}{k}" for k in range(lanes)]
    for source in sources:
        relay.put_source(source)
        relay.subscribe(receiver.url, "reliable", source)
    receiver.reset()
    m2 = settled_memory(r)
    accepted = sum(
        ingest_exactly(relay, source, n // lanes + (k < n % lanes), connections, body)
        for k, source in enumerate(sources)
    )
    m3 = settled_memory(r)
    if not (with_memory and nosub and accepted):
        return accepted, None
    amortized = all(m.buckets for m in (m0, m1, m2, m3))
    return accepted, Memory(n, m1.minus(m0) / nosub, m3.minus(m2) / accepted, amortized)


def timed_drain(
    procs: Procs,
    relay: Relay,
    receiver: ReceiverClient,
    workers: int,
    expected: int,
    timeout_s: float,
    redis_pid: int | None,
    caps: CpuCaps | None,
) -> tuple[Tally, float, dict[str, float]]:
    """Start the workers (each under its CPU cap, with ``caps``), wait for every delivery:
    what arrived, the wall time from the start, and each process's share of a core from the
    first delivery to the last."""
    t0 = time.monotonic()
    start_workers(procs, relay, workers, wait=False)
    if caps is not None:
        for name, proc in procs.procs.items():
            if name.startswith("worker"):
                caps.cap(name, proc.pid)
    receiver.wait_for(1, timeout_s, procs.check_alive)
    pids = {name: proc.pid for name, proc in procs.procs.items()}
    if redis_pid is not None:
        pids["redis"] = redis_pid
    meter = CpuMeter(pids)
    meter.start()
    t_first = time.monotonic()
    got = receiver.wait_for(expected, timeout_s, procs.check_alive)
    window = time.monotonic() - t_first
    shares = {name: used / window for name, used in meter.stop().items()} if window else {}
    return got, time.monotonic() - t0, shares


def run_drain(
    log_dir: Path,
    receiver: ReceiverClient,
    n: int,
    workers: int,
    connections: int,
    body: bytes,
    timeout_s: float,
    with_memory: bool,
    lanes: int,
    caps: CpuCaps | None,
    extra_env: dict[str, str] | None = None,
    key: str = "",
) -> tuple[Drain, Memory | None]:
    key = key or f"drain{workers}"
    log(f"[{key}] {n} deliveries queued over {lanes} lanes, then {workers} worker(s)")
    with Procs(log_dir, key) as procs:
        redis_server = procs.start_redis()
        redis_pid = redis_server.process.pid if redis_server.process else None
        with (
            running_relay(procs, redis_server.url, extra_env=extra_env) as relay,
            redis.Redis.from_url(redis_server.url) as r,
        ):
            relay.put_source(SOURCE)
            expected, memory = fill_queue(
                relay, r, receiver, n, connections, body, with_memory, lanes
            )
            got, wall, shares = timed_drain(
                procs, relay, receiver, workers, expected, timeout_s, redis_pid, caps
            )
    span = got.last_new - got.first
    rate = (got.unique - 1) / span if span > 0 else 0.0
    drain = Drain(workers, got.unique, expected, rate, wall, shares, procs.log_summaries())
    return drain, memory


# --- output --------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    floor = next((row for row in rows if row.key == "b"), None)
    head = (
        f"{'target':38} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'req/s÷b':>8} {'p99÷b':>6} "
        f"{'errors':>6} {'CPU µs/req':>10}  delivered/accepted"
    )
    print(f"\n{head}\n{'-' * len(head)}")
    for row in rows:
        ld = row.load
        rs = f"{ld.req_s / floor.load.req_s:.2f}" if floor and floor.load.req_s else "-"
        p99 = f"{ld.p99_ms / floor.load.p99_ms:.2f}" if floor and floor.load.p99_ms else "-"
        errors = ld.status_errors + ld.socket_errors
        print(
            f"{row.key}. {row.label:35} {ld.req_s:>7.0f} {ld.p50_ms:>7.2f} {ld.p99_ms:>7.2f} "
            f"{rs:>8} {p99:>6} {errors:>6} {row.cpu_us_per_req:>10}  {row.delivered}"
        )
    if rows:
        client = ", ".join(f"{r.key} {r.load.client_cpu_s / r.load.duration_s:.0%}" for r in rows)
        print(f"load client CPU (share of one core) during each run: {client}")


def print_drains(drains: list[Drain], worker_cpu: float) -> None:
    if drains:
        print()
    if drains and worker_cpu:
        print(f"each drain worker capped at {worker_cpu:.0%} of a core (cgroup cpu)")
    for d in drains:
        plural = "s" if d.workers > 1 else ""
        note = "" if d.delivered >= d.expected else f"; only {d.delivered}/{d.expected} arrived"
        split = {n: sm.succeeded for n, sm in d.logs.items() if n.startswith("worker")}
        if d.workers > 1 and any(split.values()):
            note += "; " + ", ".join(f"{n} delivered {count}" for n, count in split.items())
        print(
            f"drain, {d.workers} worker{plural}: {d.rate:5.0f} deliveries/s, first to last "
            f"delivery ({d.delivered} in {d.wall_s:.1f} s from starting the worker "
            f"process{'es' if plural else ''}{note})"
        )
        if d.cpu_shares:
            shares = ", ".join(f"{name} {share:.0%}" for name, share in d.cpu_shares.items())
            print(f"  CPU while draining (share of one core): {shares}")
    if len(drains) == 2 and drains[0].rate:
        print(f"drain, two workers / one: {drains[1].rate / drains[0].rate:.2f}")


def print_memory(memory: Memory, body_bytes: int) -> None:
    print(
        f"\nRedis used_memory per event ({memory.events} events, {body_bytes}-byte body), "
        "beyond the body:"
    )
    for label, value in (
        ("event, no subscription", memory.nosub_per_event - body_bytes),
        ("event + 1 pending reliable delivery", memory.sub_per_event - body_bytes),
        ("per pending delivery, beyond the event", memory.per_delivery),
    ):
        print(f"  {label:40} {value:8,.0f} B")
    if memory.amortized:
        print("  (the key space's bucket arrays at their average, 1.39 buckets of 8 B per key)")
    else:
        print("  (bucket arrays as used_memory saw them: MEMORY STATS did not give their size)")


def print_logs(rows: list[Row], drains: list[Drain]) -> None:
    steps = [(row.key, row.logs) for row in rows] + [(f"drain{d.workers}", d.logs) for d in drains]
    if any(logs for _, logs in steps):
        print("\nrelay logs (JSON lines by level; warnings, errors and raw tracebacks by name):")
    for step, logs in steps:
        for name, summary in logs.items():
            print(f"  {step} {name}: {summary.describe()}")


# --- main ----------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """wrk's spelling: ``8s``, ``1m``, or plain seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([sm]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 8s)")
    return float(m[1]) * (60 if m[2] == "m" else 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add = parser.add_argument
    add("-d", "--duration", type=parse_duration, default=8.0, help="load per target (8s)")
    add("-c", "--connections", type=int, default=32, help="open connections (32)")
    add("-t", "--threads", type=int, default=1, help="wrk threads (1)")
    add("--warmup", type=parse_duration, default=1.0, help="uncounted load first (1s)")
    add("--tool", choices=["auto", "wrk", "python"], default="auto", help="load tool (auto)")
    add("--targets", default="abcde", help="which targets to run (abcde)")
    add("-n", "--drain-events", type=int, default=20000, help="deliveries to drain; 0: skip")
    add("--drain-connections", type=int, default=8, help="connections queueing them (8)")
    # One job drains a lane at a time, so a second worker only helps with a second lane.
    add("--drain-lanes", type=int, default=4, help="subscriptions they are spread over (4)")
    add("--rate-limit", type=float, default=50, help="rate_limit of the rate check (50/s)")
    add("--rate-events", type=int, default=250, help="deliveries for the rate check; 0: skip")
    add("--rounds", type=int, default=1, help="run the targets this many times (1)")
    add("--worker-cpu", type=float, default=0.0,
        help="cap each drain worker at this share of a core (cgroup; root); 0: none")  # fmt: skip
    add("--delivery-wait", type=parse_duration, default=60.0, help="d/e wait for deliveries")
    add("--drain-timeout", type=parse_duration, default=120.0, help="longest drain (120s)")
    add("--keep-logs", type=Path, help="copy every process's log to this directory at the end")
    add("--tracing", type=parse_tracing, default=None,
        help="compare tracing instead: off and sampling ratios, e.g. off,1.0,0.1")  # fmt: skip
    args = parser.parse_args(argv)
    if args.connections < 1 or args.threads < 1 or args.threads > args.connections:
        parser.error("need 1 <= threads <= connections")
    if set(args.targets) - set("abcde"):
        parser.error("--targets takes letters from abcde")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.worker_cpu:
        try:
            CpuCaps(args.worker_cpu)
        except CpuCapError as exc:
            parser.error(f"--worker-cpu: {exc}")
    return args


def pick_tool(wanted: str) -> str:
    has_wrk = Path(WRK).exists()
    if wanted == "wrk" and not has_wrk:
        raise SystemExit(f"{WRK} not found: apt-get install wrk, or --tool python")
    return "wrk" if wanted == "wrk" or (wanted == "auto" and has_wrk) else "python"


def run_targets(
    args: argparse.Namespace, plan: LoadPlan, log_dir: Path, receiver: ReceiverClient
) -> tuple[list[Row], dict[str, list[float]]]:
    """Every target, ``--rounds`` times over: per target the round with the median req/s,
    and each round's req/s÷b (b and the others of one round run within a minute or two of
    each other, so their ratio is steadier than either figure on a shared machine)."""
    rounds: dict[str, list[Row]] = {key: [] for key in args.targets}
    for n in range(args.rounds):
        logs = log_dir
        if args.rounds > 1:
            log(f"round {n + 1} of {args.rounds}")
            # A round's own logs: the summaries below must not count another round's lines.
            logs = log_dir / f"round{n + 1}"
            logs.mkdir(exist_ok=True)
        for key in args.targets:
            if key in "ab":
                row = run_floor(plan, logs, key, durable=key == "b")
            else:
                mode = {"c": None, "d": "reliable", "e": "best_effort"}[key]
                row = run_relay_target(plan, logs, key, receiver, mode, args.delivery_wait)
            rounds[key].append(row)
    by_rate = (sorted(rows, key=lambda r: r.load.req_s) for rows in rounds.values())
    median = [rows[(len(rows) - 1) // 2] for rows in by_rate]
    ratios: dict[str, list[float]] = {}
    if "b" in rounds and args.rounds > 1:
        floors = [row.load.req_s for row in rounds["b"]]
        for key, rows in rounds.items():
            if key != "b":
                ratios[key] = [r.load.req_s / f for r, f in zip(rows, floors, strict=True) if f]
    return median, ratios


def print_rounds(ratios: dict[str, list[float]]) -> None:
    if ratios:
        print("req/s÷b in each round (the table shows each target's median round):")
    for key, values in ratios.items():
        listed = " ".join(f"{v:.2f}" for v in values)
        print(f"  {key}. {listed}  (median {statistics.median(values):.2f})")


def run_drains(
    args: argparse.Namespace, body: bytes, log_dir: Path, receiver: ReceiverClient
) -> tuple[list[Drain], Memory | None]:
    drains: list[Drain] = []
    memory: Memory | None = None
    if args.drain_events <= 0:
        return drains, memory
    caps = CpuCaps(args.worker_cpu) if args.worker_cpu else None
    try:
        for workers in (1, 2):
            drain, mem = run_drain(
                log_dir, receiver, args.drain_events, workers, args.drain_connections, body,
                args.drain_timeout, with_memory=workers == 1, lanes=args.drain_lanes,
                caps=caps,
            )  # fmt: skip
            drains.append(drain)
            memory = memory or mem
    finally:
        if caps is not None:
            caps.close()
    return drains, memory


@contextlib.contextmanager
def running_receiver(log_dir: Path) -> Iterator[ReceiverClient]:
    """One receiver for the whole run; reset before each step that delivers to it."""
    with Procs(log_dir, "receiver") as procs:
        port = free_port()
        procs.spawn("receiver", floor_command("receiver", port), dict(os.environ))
        url = f"http://127.0.0.1:{port}"
        procs.wait_http("receiver", f"{url}/count")
        receiver = ReceiverClient(url, procs.check_alive)
        try:
            yield receiver
        finally:
            receiver.close()


@dataclass
class RateCheck:
    limit: float
    workers: int
    delivered: int
    rate: float


def run_rate_limit(
    args: argparse.Namespace, body: bytes, log_dir: Path, receiver: ReceiverClient
) -> RateCheck | None:
    """One subscription with ``rate_limit`` and two workers: the rate the receiver sees,
    from its first delivery to its last (the limit holds across workers, or it does not)."""
    if args.rate_events <= 0:
        return None
    workers = 2
    log(f"[rate] {args.rate_events} deliveries at {args.rate_limit:g}/s, {workers} workers")
    with Procs(log_dir, "rate") as procs:
        redis_server = procs.start_redis()
        with running_relay(procs, redis_server.url) as relay:
            relay.put_source(SOURCE)
            relay.admin(
                "POST", "/api/subscriptions", url=receiver.url, sources=[SOURCE],
                rate_limit=args.rate_limit,
            )  # fmt: skip
            receiver.reset()
            expected = ingest_exactly(relay, SOURCE, args.rate_events, args.drain_connections, body)
            start_workers(procs, relay, workers, wait=False)
            got = receiver.wait_for(expected, args.drain_timeout, procs.check_alive)
    span = got.last_new - got.first
    rate = (got.unique - 1) / span if span > 0 else 0.0
    return RateCheck(args.rate_limit, workers, got.unique, rate)


def print_rate(check: RateCheck | None) -> None:
    if check is None:
        return
    off = (check.rate - check.limit) / check.limit
    print(
        f"\nrate_limit {check.limit:g}/s across {check.workers} workers: {check.rate:.1f} "
        f"deliveries/s at the receiver ({off:+.1%}), {check.delivered} delivered"
    )


# --- the cost of tracing --------------------------------------------------------------------


def parse_tracing(text: str) -> list[float | None]:
    """``off,1.0,0.1``: None for off, else a sampling ratio; "off" first, as the baseline."""
    found: list[float | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "off":
            found.append(None)
            continue
        try:
            ratio = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not 'off' or a ratio: {part!r}") from None
        if not 0 <= ratio <= 1:
            raise argparse.ArgumentTypeError(f"a sampling ratio is between 0 and 1: {part}")
        found.append(ratio)
    # "off" first: every round's other settings are divided by it.
    return [None, *dict.fromkeys(r for r in found if r is not None)]


def tracing_env(ratio: float | None, collector: OtlpCollector) -> dict[str, str]:
    if ratio is None:
        return {}
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.base_url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": f"{ratio:g}",
    }


@dataclass
class TracedRun:
    ratio: float | None
    ingest: Row
    drain: Drain | None
    spans: int  # what the collector received during both

    @property
    def label(self) -> str:
        return "tracing off" if self.ratio is None else f"on, sampling {self.ratio:g}"


def run_tracing(
    args: argparse.Namespace, plan: LoadPlan, log_dir: Path, receiver: ReceiverClient
) -> list[list[TracedRun]]:
    """Per round, each setting one after another (so a busy spell on a shared machine falls
    on all of them): ingest with a reliable subscription and a worker, then a drain."""
    collector = OtlpCollector(keep=False)
    rounds: list[list[TracedRun]] = []
    try:
        for n in range(args.rounds):
            logs = log_dir / f"round{n + 1}"
            logs.mkdir(exist_ok=True)
            log(f"round {n + 1} of {args.rounds}")
            runs = []
            for ratio in args.tracing:
                env = tracing_env(ratio, collector)
                tag = "off" if ratio is None else f"s{ratio:g}"
                before = collector.span_count
                row = run_relay_target(plan, logs, f"d-{tag}", receiver, "reliable",
                                       args.delivery_wait, env)  # fmt: skip
                drain = None
                if args.drain_events > 0:
                    drain, _ = run_drain(
                        logs, receiver, args.drain_events, 1, args.drain_connections,
                        plan.body, args.drain_timeout, with_memory=False,
                        lanes=args.drain_lanes, caps=None, extra_env=env, key=f"drain-{tag}",
                    )  # fmt: skip
                runs.append(TracedRun(ratio, row, drain, collector.span_count - before))
            rounds.append(runs)
    finally:
        collector.close()
    return rounds


def _api_cpu(run: TracedRun) -> float | None:
    """The API's CPU µs per ingested request (the first of cpu_us_per_req's "api+worker")."""
    first = run.ingest.cpu_us_per_req.split("+")[0]
    return float(first) if first.isdigit() else None


def _worker_cpu(run: TracedRun) -> float | None:
    """The draining worker's CPU µs per delivery."""
    d = run.drain
    share = d.cpu_shares.get("worker1") if d else None
    return share / d.rate * 1e6 if d and share and d.rate else None


# What the tracing table shows of each run: a rate, or CPU per unit of work, which a busy
# shared machine disturbs far less than a rate (it slows a process, it does not make its
# work cost more).
_TRACED_FIGURES: list[tuple[str, Callable[[TracedRun], float | None]]] = [
    ("ingest req/s", lambda r: r.ingest.load.req_s),
    ("API µs/req", _api_cpu),
    ("drain/s", lambda r: r.drain.rate if r.drain else None),
    ("worker µs/dlv", _worker_cpu),
]


def print_tracing(rounds: list[list[TracedRun]]) -> None:
    head = f"{'tracing':19}" + "".join(f" {name:>13} {'÷off':>5}" for name, _ in _TRACED_FIGURES)
    head += f" {'spans':>7}"
    print(f"\nmedian of {len(rounds)} round(s); ÷off: the median of each round's ratio to off")
    print(f"{head}\n{'-' * len(head)}")
    for i in range(len(rounds[0])):
        runs = [r[i] for r in rounds]
        cells = []
        for _, figure in _TRACED_FIGURES:
            values = [v for v in map(figure, runs) if v is not None]
            ratios = [
                v / b
                for v, b in ((figure(r[i]), figure(r[0])) for r in rounds)
                if v is not None and b
            ]
            value = f"{statistics.median(values):.0f}" if values else "-"
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
            cells.append(f" {value:>13} {ratio:>5}")
        spans = statistics.median(r.spans for r in runs)
        print(f"{runs[0].label:19}{''.join(cells)} {spans:>7,.0f}")
    print("each round (ingest req/s, API µs/req, drain/s, worker µs/dlv; delivered/accepted):")
    for i in range(len(rounds[0])):
        cells = "; ".join(
            ", ".join(f"{v:.0f}" if v is not None else "-" for v in (f(r[i]) for _, f in
                                                                     _TRACED_FIGURES))
            + f" ({r[i].ingest.delivered})"
            for r in rounds
        )  # fmt: skip
        print(f"  {rounds[0][i].label:19} {cells}")


def run(args: argparse.Namespace, plan: LoadPlan, log_dir: Path) -> None:
    if args.tracing:
        with running_receiver(log_dir) as receiver:
            rounds = run_tracing(args, plan, log_dir, receiver)
        print_tracing(rounds)
        print_logs([t.ingest for r in rounds for t in r], [])
        return
    with running_receiver(log_dir) as receiver:
        rows, ratios = run_targets(args, plan, log_dir, receiver)
        drains, memory = run_drains(args, plan.body, log_dir, receiver)
        rate = run_rate_limit(args, plan.body, log_dir, receiver)
    print_table(rows)
    print_rounds(ratios)
    print_drains(drains, args.worker_cpu)
    print_rate(rate)
    if memory is not None:
        print_memory(memory, len(plan.body))
    print_logs(rows, drains)


def keep_logs(work_dir: Path, to: Path | None) -> None:
    if to is None:
        return
    to.mkdir(parents=True, exist_ok=True)
    for path in work_dir.rglob("*.log"):
        shutil.copy2(path, to / "-".join(path.relative_to(work_dir).parts))
    log(f"logs copied to {to}")


def describe_tool(tool: str, args: argparse.Namespace) -> str:
    if tool == "wrk":
        text = f"wrk ({WRK}), -t{args.threads} -c{args.connections} -d{args.duration:g}s"
    else:
        why = "--tool python" if args.tool == "python" else f"no {WRK}"
        text = (
            f"Python client (uvloop + httptools; wrk not used: {why}), "
            f"{args.connections} connections, {args.duration:g} s"
        )
    return f"{text}, {args.warmup:g} s warm-up first; {BODY_BYTES}-byte JSON body"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    tool = pick_tool(args.tool)
    print_header()
    print(f"load tool: {describe_tool(tool, args)}")
    sys.stdout.flush()
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="relay-throughput-") as tmp:
            work_dir = Path(tmp)
            plan = LoadPlan(
                tool, args.duration, args.warmup, args.connections, args.threads, make_body(),
                work_dir,
            )  # fmt: skip
            try:
                run(args, plan, work_dir)
            finally:
                keep_logs(work_dir, args.keep_logs)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM; the with blocks have stopped everything
        log("interrupted; all processes stopped")
        return 130
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s; all processes stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
