"""Process-wide tuning, applied once a relay process has finished starting.

The garbage collector's oldest generation walks every long-lived object (modules, pydantic
schemas, settings, caches) each time it runs; under load that pause landed in the tail of
ingest latency (``benchmarks/throughput.py``, relay with no subscription: p99 ~70 ms with
CPython's defaults, ~23 ms frozen). Freezing what start-up made moves it out of the
collector's sight, and a larger first threshold makes collections rarer; cycles made later
are still collected.
"""

from __future__ import annotations

import gc

# Allocations (net) between two young-generation collections; CPython's default is 700.
YOUNG_THRESHOLD = 10_000


def settle_after_startup() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
