"""Redis goes away under load (kill -9 and restart, SIGSTOP past the socket timeout): every
webhook acknowledged is delivered, with no manual action, and every relay process is still
running, having logged the outage once and the recovery once."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx

from relay.devtools.receiver import Receiver
from tests.faults.conftest import Figures
from tests.faults.harness import RelayStack, post_keyed, wait_until


@dataclass
class Traffic:
    """Webhooks posted from a thread, one every ``interval_s``, until stopped."""

    base: str
    interval_s: float = 0.02
    accepted: list[str] = field(default_factory=list)
    refused: list[tuple[int, float]] = field(default_factory=list)  # status, seconds taken
    refused_at: list[float] = field(default_factory=list)  # time.monotonic() of each
    # Each refusal's key, its problem body and its Retry-After header.
    refusals: list[tuple[str, dict[str, object], str | None]] = field(default_factory=list)
    slowest_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, trust_env=False, timeout=10.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    key, response = post_keyed(client)
                except httpx.TransportError:
                    continue
                took = time.monotonic() - started
                self.slowest_s = max(self.slowest_s, took)
                if response.status_code == 202:
                    self.accepted.append(key)
                else:
                    self.refused.append((response.status_code, took))
                    self.refused_at.append(time.monotonic())
                    body = response.json() if response.content else {}
                    self.refusals.append((key, body, response.headers.get("retry-after")))
                self._stop.wait(self.interval_s)

    def wait_for(self, count: int, timeout_s: float = 20.0) -> None:
        start = len(self.accepted)
        wait_until(lambda: len(self.accepted) >= start + count, timeout_s, f"{count} accepted")


def delivered(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["key"] for r in receiver.requests]


def ready(stack: RelayStack) -> int:
    with stack.client() as client:
        return client.get("/readyz").status_code


def start_relay(stack: RelayStack, receiver: Receiver) -> str:
    base = stack.start_api()
    stack.put_source()
    stack.subscribe(receiver.url)
    stack.start_worker()
    stack.wait_ready()
    return base


def assert_rode_it_out(stack: RelayStack) -> None:
    """Both processes still run, and each logged the outage once and its end once."""
    assert stack.alive("api")
    assert stack.alive("worker")
    wait_until(lambda: '"redis.recovered"' in stack.log("worker"), 10, "the worker logs the end")
    worker_log = stack.log("worker")
    assert "Traceback" not in worker_log
    assert worker_log.count('"redis.unavailable"') == 1
    assert worker_log.count('"redis.recovered"') == 1


def all_delivered(receiver: Receiver, traffic: Traffic, figures: Figures, since: float) -> None:
    def done() -> bool:
        return set(traffic.accepted) <= set(delivered(receiver))

    wait_until(done, 30, f"{len(traffic.accepted)} acknowledged webhooks delivered")
    got = delivered(receiver)
    figures("acknowledged", len(traffic.accepted))
    figures("all delivered, s after Redis came back", f"{time.monotonic() - since:.1f}")
    figures("duplicates (same webhook-id)", len(got) - len(set(got)))
    figures("refused while Redis was away (503)", len(traffic.refused))
    assert {status for status, _ in traffic.refused} <= {503}


def test_redis_kill_9_and_restart_under_load(
    stack: RelayStack, receiver: Receiver, fault_figures: Figures
) -> None:
    base = start_relay(stack, receiver)
    with Traffic(base) as traffic:
        traffic.wait_for(40)
        stack.kill_redis()
        wait_until(lambda: ready(stack) == 503, 10, "/readyz says Redis is away")
        time.sleep(1.0)  # Redis stays down for a while: ingest answers 503 meanwhile
        stack.restart_redis()
        back = time.monotonic()
        traffic.wait_for(40)
    all_delivered(receiver, traffic, fault_figures, back)
    wait_until(lambda: ready(stack) == 200, 10, "/readyz ready again")
    assert_rode_it_out(stack)


def test_redis_stalled_past_the_socket_timeout(
    stack: RelayStack, receiver: Receiver, fault_figures: Figures
) -> None:
    stack.env["RELAY_REDIS_SOCKET_TIMEOUT_S"] = "0.5"
    base = start_relay(stack, receiver)
    with Traffic(base) as traffic:
        traffic.wait_for(20)
        stack.pause_redis()
        time.sleep(2.5)  # five socket timeouts
        stack.resume_redis()
        back = time.monotonic()
        traffic.wait_for(20)
    all_delivered(receiver, traffic, fault_figures, back)
    slowest = max((took for _, took in traffic.refused), default=0.0)
    fault_figures("slowest 503 while Redis was stalled, s", f"{slowest:.2f}")
    # Ingest waited about a socket timeout, not for the whole stall.
    assert traffic.refused, "no webhook was posted while Redis was stalled"
    assert slowest < 2.0
    assert_rode_it_out(stack)
