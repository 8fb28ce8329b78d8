"""Tracing in real ``relay serve`` and ``relay worker`` processes, switched on by OTEL_*
variables as an operator would, exporting to a real OTLP/HTTP endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from relay.devtools.otlp_collector import OtlpCollector
from relay.devtools.receiver import Receiver
from tests.faults.harness import RelayStack, post_keyed, wait_until
from tests.worker.test_tracing import has, named, trace_of


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    c = OtlpCollector()
    yield c
    c.close()


def lines(log: str, event: str) -> list[dict[str, object]]:
    found = []
    for raw in log.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if record.get("event") == event:
            found.append(record)
    return found


def test_one_trace_across_the_api_and_two_worker_processes(
    stack: RelayStack, receiver: Receiver, collector: OtlpCollector
) -> None:
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.base_url,
        "OTEL_SERVICE_NAME": "relay",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        # Time to swap workers between the first attempt and the retry.
        "RELAY_RETRY__INITIAL_S": "2",
    }
    stack.start_api(**otel)
    stack.put_source()
    stack.subscribe(receiver.url)
    receiver.script(503)  # then 200
    stack.start_worker(**otel)
    with stack.client() as client:
        _, response = post_keyed(client)
    assert response.status_code == 202, response.text
    first_spans = collector.wait_for(has(("POST", 1)), timeout_s=30)

    # The worker that made the first attempt stops; one started later makes the retry.
    proc = stack.group.procs["worker"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    stack.start_worker("worker2", **otel)
    wait_until(lambda: len(receiver.requests) >= 2, 30, "the retry arrived")
    spans = collector.wait_for(has(("POST /ingest/{source}", 1), ("relay.fanout", 1), ("POST", 2)))

    [ingest] = named(spans, "POST /ingest/{source}")
    [fanout] = named(spans, "relay.fanout")
    attempts = sorted(named(spans, "POST"), key=lambda s: s.attributes["relay.attempt"])
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 200]
    assert named(first_spans, "POST")[0].span_id == attempts[0].span_id
    for span in (fanout, *attempts):
        assert (span.trace_id, span.parent_span_id) == (ingest.trace_id, ingest.span_id)
    assert {s.service for s in spans} == {"relay"}
    got = [trace_of(r.headers)[:2] for r in receiver.requests]
    assert got == [(ingest.trace_id, a.span_id) for a in attempts]

    # Each process's JSON log lines name the span they were written in.
    [accepted] = lines(stack.log("api"), "ingest.accepted")
    assert (accepted["trace_id"], accepted["span_id"]) == (ingest.trace_id, ingest.span_id)
    [scheduled] = lines(stack.log("worker"), "delivery.retry_scheduled")
    assert (scheduled["trace_id"], scheduled["span_id"]) == (ingest.trace_id, attempts[0].span_id)
    [succeeded] = lines(stack.log("worker2"), "delivery.succeeded")
    assert (succeeded["trace_id"], succeeded["span_id"]) == (ingest.trace_id, attempts[1].span_id)
