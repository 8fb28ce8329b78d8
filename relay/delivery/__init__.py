"""Use cases: ingest, fan-out, attempts, subscription lifecycle, outbound HTTP, queue."""
