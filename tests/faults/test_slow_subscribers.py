"""Slow and flaky subscribers next to a healthy one (issue 10, items 4 and 10).

Six subscribers hang 14 s on every request while 10 events/s arrive; a seventh answers at
once and an eighth fails everything during the load. The healthy one must see its events
within a second (p95), and the flaky one's retries must follow its schedule, not wait for
slots the slow lanes hold. Afterwards every subscriber has every event it was sent.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise

import httpx
import pytest

from relay.devtools.receiver import Received, Receiver, Reply
from tests.faults.conftest import Figures
from tests.faults.harness import RelayStack, wait_until

SLOW = 6
HANG_S = 14.0
RATE = 10  # events/s
LOAD_S = 8.0
FLAKY_EVERY = 10  # one event in ten is of the type the flaky subscriber takes
FLAKY_MAX_WAIT_S = 1.0


@pytest.fixture
def slow_receivers() -> Iterator[list[Receiver]]:
    receivers = [Receiver() for _ in range(SLOW)]
    for r in receivers:
        r.default = Reply(delay_s=HANG_S)
    yield receivers
    for r in receivers:
        r.close()


class Flaky(Receiver):
    """Answers 503 until told otherwise; remembers the keys it answered 2xx for."""

    def __init__(self) -> None:
        self.ok: set[str] = set()
        super().__init__(on_request=self._answered)
        self.default = Reply(status=503)

    def _answered(self, got: Received, reply: Reply) -> None:
        if reply.status < 300:
            self.ok.add(json.loads(got.body)["key"])


@pytest.fixture
def flaky_receiver() -> Iterator[Flaky]:
    r = Flaky()
    yield r
    r.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def post_at_rate(base: str) -> dict[str, float]:
    """POST ``RATE`` events a second for ``LOAD_S``; each acknowledged key -> when it was sent."""
    sent: dict[str, float] = {}
    count = int(RATE * LOAD_S)
    start = time.monotonic()
    with httpx.Client(base_url=base, trust_env=False, timeout=5.0) as client:
        for n in range(count):
            # Paced against the start, so a slow POST does not slow the rate down.
            time.sleep(max(0.0, start + n / RATE - time.monotonic()))
            key = f"k{n}"
            event_type = "flaky" if n % FLAKY_EVERY == 0 else "push"
            at = time.time()
            response = client.post(
                "/ingest/github",
                content=json.dumps({"key": key}).encode(),
                headers={
                    "X-GitHub-Event": event_type,
                    "X-GitHub-Delivery": key,
                    "content-type": "application/json",
                },
            )
            assert response.status_code == 202, response.text
            sent[key] = at
    return sent


def first_arrivals(receiver: Receiver) -> dict[str, float]:
    seen: dict[str, float] = {}
    for r in list(receiver.requests):
        seen.setdefault(json.loads(r.body)["key"], r.at)
    return seen


def test_slow_subscribers_do_not_delay_a_healthy_one(
    stack: RelayStack,
    receiver: Receiver,
    slow_receivers: list[Receiver],
    flaky_receiver: Flaky,
    fault_figures: Figures,
) -> None:
    base = stack.start_api()
    stack.put_source()
    stack.subscribe(receiver.url)
    for slow in slow_receivers:
        stack.subscribe(slow.url)
    stack.subscribe(
        flaky_receiver.url,
        event_types=["flaky"],
        retry={"max_attempts": 100, "max_wait_s": FLAKY_MAX_WAIT_S},
    )
    stack.start_worker()
    stack.wait_ready()

    sent = post_at_rate(base)
    load_ended = time.time()
    # The slow and flaky receivers get well; what is hanging now still takes its 14 s.
    for r in [*slow_receivers, flaky_receiver]:
        r.default = Reply()

    wait_until(lambda: set(first_arrivals(receiver)) == set(sent), 10, "healthy: all delivered")
    arrived = first_arrivals(receiver)
    latency = [arrived[k] - sent[k] for k in sent]
    p50, p95 = percentile(latency, 0.5), percentile(latency, 0.95)
    fault_figures("healthy latency p50 / p95 / max, ms",
                  f"{p50 * 1000:.0f} / {p95 * 1000:.0f} / {max(latency) * 1000:.0f}")  # fmt: skip

    flaky_keys = {k for n, k in enumerate(sent) if n % FLAKY_EVERY == 0}
    wait_until(lambda: flaky_receiver.ok == flaky_keys, 15, "flaky: all delivered")
    gaps = attempt_gaps(flaky_receiver, before=load_ended)
    assert gaps, "the flaky subscriber got no retry at all during the load"
    fault_figures("flaky gaps between attempts during the load: n / median / max, s",
                  f"{len(gaps)} / {statistics.median(gaps):.2f} / {max(gaps):.2f}")  # fmt: skip

    for n, slow in enumerate(slow_receivers):
        wait_until(lambda s=slow: set(first_arrivals(s)) == set(sent), HANG_S + 30, f"slow {n}")
    healthy_dups, slow_dups = duplicates(receiver), sum(map(duplicates, slow_receivers))
    fault_figures("slow subscribers: all delivered, s after the load",
                  f"{time.time() - load_ended:.1f}")  # fmt: skip
    # A slow request that ends just past RELAY_DELIVERY_TIMEOUT_S (15 s against a 14 s hang
    # on a busy machine) is retried though the receiver got it: at least once, as promised.
    fault_figures("duplicates (same webhook-id): healthy / slow receivers",
                  f"{healthy_dups} / {slow_dups}")  # fmt: skip

    assert p95 < 1.0, f"healthy p95 {p95:.2f} s"
    # The flaky subscriber's waits are capped at 1 s; the lane adds its own hold of at most
    # the same cap after failures in a row. Today's bug was 208 s with a 10 s cap.
    assert max(gaps) < 2 * FLAKY_MAX_WAIT_S + 1.0, gaps
    assert healthy_dups == 0
    assert all(set(first_arrivals(s)) == set(sent) for s in slow_receivers)
    assert set(first_arrivals(receiver)) == set(sent)


def attempt_gaps(receiver: Receiver, before: float) -> list[float]:
    """Seconds between consecutive attempts of each delivery, among those made before ``before``."""
    times: dict[str, list[float]] = defaultdict(list)
    for r in list(receiver.requests):
        if r.at <= before:
            times[r.headers["webhook-id"]].append(r.at)
    return [b - a for ts in times.values() for a, b in pairwise(sorted(ts))]


def duplicates(receiver: Receiver) -> int:
    return len(receiver.requests) - len({r.headers["webhook-id"] for r in receiver.requests})
