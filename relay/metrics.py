"""Prometheus metrics: every counter and histogram the relay exports, in one place.

Labels are bounded: sources are names an admin created (unknown ones count as ``_unknown``),
outcomes and reasons come from small fixed sets.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

UNKNOWN_SOURCE = "_unknown"

INGESTED = Counter(
    "relay_ingest",
    "Webhooks received, by source and outcome (accepted, duplicate, rejected) and reason.",
    ["source", "outcome", "reason"],
)


def render() -> tuple[bytes, str]:
    """The exposition text; with PROMETHEUS_MULTIPROC_DIR set, summed over all processes."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
