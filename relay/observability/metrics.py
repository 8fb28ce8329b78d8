"""Prometheus metrics: every counter and histogram the relay exports, in one place.

Labels are bounded: sources are names an admin created (unknown ones count as ``_unknown``),
outcomes and reasons come from small fixed sets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from relay.domain.models import DeliveryStatus

UNKNOWN_SOURCE = "_unknown"
TOP_LANES = 10

INGESTED = Counter(
    "relay_ingest",
    "Webhooks received, by source and outcome (accepted, duplicate, rejected) and reason.",
    ["source", "outcome", "reason"],
)

HTTP_REFUSED = Counter(
    "relay_http_refused",
    "Requests and connections refused before the app took them (relay.api.protocol) or for "
    "the body budget (relay.api.bodies), or during a Redis outage (relay.api.problems), by "
    "reason.",
    ["reason"],
)

DELIVERY_ATTEMPTS = Counter(
    "relay_delivery_attempts",
    "Delivery attempts by outcome (succeeded, failed = will retry, dead) and status class.",
    ["outcome", "status_class"],
)
ATTEMPT_SECONDS = Histogram(
    "relay_attempt_duration_seconds",
    "Duration of one HTTP attempt to a subscriber.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
END_TO_END_SECONDS = Histogram(
    "relay_end_to_end_seconds",
    "From receipt of an event to its successful delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 21600, 86400),
)
RETRIES_SCHEDULED = Counter("relay_retries_scheduled", "Retries scheduled after a failed attempt.")
SUBSCRIPTIONS_DISABLED = Counter(
    "relay_subscriptions_disabled", "Subscriptions disabled: a 410 Gone, or failing for too long."
)
QUEUE_DEPTH = Gauge(
    "relay_queue_depth",
    "Deliveries due now, scheduled for later, and dead (read from Redis at scrape time).",
    ["state"],
    multiprocess_mode="mostrecent",
)

REDIS_UNAVAILABLE = Gauge(
    "relay_redis_unavailable",
    "1 while this process finds Redis unavailable, by cause (unreachable, out_of_memory).",
    ["cause"],
    multiprocess_mode="max",
)
REDIS_OUTAGES = Counter(
    "relay_redis_outages", "Redis outages this process rode out, by cause.", ["cause"]
)
REDIS_EVICTING = Gauge(
    "relay_redis_evicting",
    "1 while Redis's maxmemory-policy is not noeviction (it may drop accepted events).",
    multiprocess_mode="max",
)

LANE_DEPTH = Gauge(
    "relay_lane_depth",
    f"Deliveries waiting in a subscription's lane (the {TOP_LANES} deepest lanes only).",
    ["subscription_id"],
    multiprocess_mode="mostrecent",
)
LANE_IN_FLIGHT = Gauge(
    "relay_lane_in_flight",
    f"Attempts in flight to a subscription (the {TOP_LANES} deepest lanes only).",
    ["subscription_id"],
    multiprocess_mode="mostrecent",
)


def observe_queue(
    due: int, scheduled: int, dead: int, lanes: Iterable[tuple[str, int, int]]
) -> None:
    """Queue depth, and the deepest lanes by subscription: a label per subscription would
    grow without bound, so only the top few are exported (the rest are in the totals)."""
    for state, count in (("due", due), ("scheduled", scheduled), ("dead", dead)):
        QUEUE_DEPTH.labels(state).set(count)
    LANE_DEPTH.clear()
    LANE_IN_FLIGHT.clear()
    deepest = sorted(lanes, key=lambda lane: lane[1] + lane[2], reverse=True)[:TOP_LANES]
    for sub_id, waiting, in_flight in deepest:
        LANE_DEPTH.labels(sub_id).set(waiting)
        LANE_IN_FLIGHT.labels(sub_id).set(in_flight)


@cache
def _ingested(source: str, outcome: str) -> Counter:
    # Sources are names an admin created, outcomes a fixed set: the children can be kept,
    # which spares the hot path labels()' lock and lookup.
    return INGESTED.labels(source, outcome, "")


def count_ingested(source: str, outcome: str) -> None:
    _ingested(source, outcome).inc()


def status_class(status_code: int | None) -> str:
    return "error" if status_code is None else f"{status_code // 100}xx"


def observe_attempt(
    outcome: DeliveryStatus,
    status_code: int | None,
    duration_ms: float,
    received_ms: int,
    finished_ms: int,
    *,
    disabled: bool,
) -> None:
    DELIVERY_ATTEMPTS.labels(outcome.value, status_class(status_code)).inc()
    ATTEMPT_SECONDS.observe(duration_ms / 1000)
    if outcome is DeliveryStatus.SUCCEEDED:
        END_TO_END_SECONDS.observe(max(0, finished_ms - received_ms) / 1000)
    elif outcome is DeliveryStatus.FAILED:
        RETRIES_SCHEDULED.inc()
    if disabled:
        SUBSCRIPTIONS_DISABLED.inc()


def _registry() -> CollectorRegistry:
    """This process's metrics; with PROMETHEUS_MULTIPROC_DIR set, summed over all processes."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render() -> tuple[bytes, str]:
    """The exposition text."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def ingest_counts() -> dict[tuple[str, str, str], int]:
    """Webhooks received since the API started, by (source, outcome, reason): rejected
    webhooks are never stored, so these counters are the only record of them."""
    counts: dict[tuple[str, str, str], int] = {}
    for metric in _registry().collect():
        if metric.name != "relay_ingest":
            continue
        for sample in metric.samples:
            if sample.name == "relay_ingest_total" and sample.value:
                labels = sample.labels
                key = (labels["source"], labels["outcome"], labels["reason"])
                counts[key] = counts.get(key, 0) + int(sample.value)
    return counts
