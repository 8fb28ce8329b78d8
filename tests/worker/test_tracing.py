"""OpenTelemetry traces, read back from a real OTLP/HTTP endpoint on 127.0.0.1.

The relay exports to :class:`~relay.devtools.otlp_collector.OtlpCollector`, which decodes
each protobuf ``ExportTraceServiceRequest`` as a collector would; subscribers are real
receivers, so the ``traceparent`` checked is the one a subscriber got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from relay.devtools.otlp_collector import OtlpCollector, ReceivedSpan
from relay.devtools.receiver import Receiver, Reply
from relay.domain.tracecontext import valid_traceparent
from relay.observability import tracing
from relay.storage.keys import Keys
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription

PROVIDER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PROVIDER_SPAN = "00f067aa0ba902b7"
PROVIDER_PARENT = f"00-{PROVIDER_TRACE}-{PROVIDER_SPAN}-01"

Configure = Callable[..., tracing.Tracing]


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    c = OtlpCollector()
    yield c
    c.close()


@pytest.fixture
def configure(collector: OtlpCollector) -> Iterator[Configure]:
    """Tracing as these OTEL_* variables say, exporting to the collector (the base
    endpoint: the relay adds /v1/traces); off again after the test."""

    def make(propagate: bool = True, **env: str) -> tracing.Tracing:
        values = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.base_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "relay-under-test",
            # Batches go out every 50 ms rather than every 5 s.
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        values.update(env)
        return tracing.configure(propagate, values)

    yield make
    tracing.configure(True, {})


async def post(api: httpx.AsyncClient, **headers: str) -> str:
    r = await api.post(
        "/ingest/github", content=b'{"zen": "Keep it logically awesome."}',
        headers={"x-github-event": "push", "content-type": "application/json", **headers},
    )  # fmt: skip
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def has(*wanted: tuple[str, int]) -> Callable[[list[ReceivedSpan]], bool]:
    """At least this many spans of each name have arrived."""
    return lambda spans: all(len(named(spans, n)) >= count for n, count in wanted)


def trace_of(request_headers: dict[str, str]) -> tuple[str, str, bool]:
    """(trace id, parent span id, sampled) of the traceparent a receiver got."""
    parent = valid_traceparent(request_headers.get("traceparent"))
    assert parent is not None, request_headers
    _, trace_id, span_id, flags = parent.split("-")
    return trace_id, span_id, bool(int(flags, 16) & 1)


async def test_one_trace_from_ingest_through_fan_out_to_every_attempt_and_the_subscriber(
    api: httpx.AsyncClient,
    run_worker: WorkerRun,
    receiver: Receiver,
    collector: OtlpCollector,
    configure: Configure,
) -> None:
    configure(OTEL_TRACES_EXPORTER="otlp")
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    receiver.script(503, 200)  # the first attempt fails; the retry succeeds
    with capture_logs(processors=tracing.active().log_processors()) as logs:
        event_id = await post(api)
        await run_worker()
    spans = collector.wait_for(has(("POST /ingest/{source}", 1), ("relay.fanout", 1), ("POST", 2)))

    [ingest] = named(spans, "POST /ingest/{source}")
    [fanout] = named(spans, "relay.fanout")
    first, retry = sorted(named(spans, "POST"), key=lambda s: s.attributes["relay.attempt"])
    assert ingest.kind == "SERVER"
    assert ingest.parent_span_id == ""
    assert ingest.service == "relay-under-test"
    assert ingest.attributes["http.request.method"] == "POST"
    assert ingest.attributes["http.route"] == "/ingest/{source}"
    assert ingest.attributes["url.path"] == "/ingest/github"
    assert ingest.attributes["http.response.status_code"] == 202
    assert ingest.attributes["relay.event_id"] == event_id
    assert ingest.attributes["relay.event_type"] == "push"
    # One trace across the queue: fan-out and both attempts are children of the ingest span.
    for span in (fanout, first, retry):
        assert span.trace_id == ingest.trace_id
        assert span.parent_span_id == ingest.span_id
    assert fanout.attributes["relay.deliveries"] == 1

    delivery_id = first.attributes["relay.delivery_id"]
    assert delivery_id.startswith("dlv_")
    for number, span, status in ((1, first, 503), (2, retry, 200)):
        assert span.kind == "CLIENT"
        assert span.attributes["relay.attempt"] == number
        assert span.attributes["http.response.status_code"] == status
        assert span.attributes["relay.subscription_id"] == sub["id"]
        assert span.attributes["relay.delivery_id"] == delivery_id
        assert span.attributes["relay.event_id"] == event_id
        assert span.attributes["server.address"] == "127.0.0.1"
        # A subscriber's URL may carry its credential: only its host and port are exported.
        assert "url.full" not in span.attributes
    assert first.status == "ERROR"
    assert first.attributes["error.type"] == "503"
    assert retry.status == "UNSET"
    assert retry.attributes["http.request.resend_count"] == 1

    # What the subscriber got continues each attempt's span.
    got = [trace_of(r.headers) for r in receiver.requests]
    assert got == [(ingest.trace_id, first.span_id, True), (ingest.trace_id, retry.span_id, True)]

    # Log lines name the span they were logged in.
    accepted = next(e for e in logs if e["event"] == "ingest.accepted")
    assert (accepted["trace_id"], accepted["span_id"]) == (ingest.trace_id, ingest.span_id)
    done = next(e for e in logs if e["event"] == "delivery.succeeded")
    assert (done["trace_id"], done["span_id"]) == (ingest.trace_id, retry.span_id)


async def test_a_providers_traceparent_is_continued(
    api: httpx.AsyncClient,
    run_worker: WorkerRun,
    receiver: Receiver,
    collector: OtlpCollector,
    configure: Configure,
) -> None:
    configure(OTEL_TRACES_EXPORTER="otlp")
    await create_source(api)
    # A subscription's own header of that name gives way to the attempt's.
    await create_subscription(api, receiver.url, headers={"TraceParent": "set-by-hand"})
    await post(api, traceparent=PROVIDER_PARENT, tracestate="vendor=opaque")
    await run_worker()
    spans = collector.wait_for(has(("POST /ingest/{source}", 1), ("POST", 1)))

    [ingest] = named(spans, "POST /ingest/{source}")
    [attempt] = named(spans, "POST")
    assert (ingest.trace_id, ingest.parent_span_id) == (PROVIDER_TRACE, PROVIDER_SPAN)
    assert (attempt.trace_id, attempt.parent_span_id) == (PROVIDER_TRACE, ingest.span_id)
    [request] = receiver.requests
    assert trace_of(request.headers) == (PROVIDER_TRACE, attempt.span_id, True)
    assert request.headers["tracestate"] == "vendor=opaque"
    assert "set-by-hand" not in str(request.headers)


async def test_a_manual_retry_later_from_another_process_joins_the_same_trace(
    api: httpx.AsyncClient,
    run_worker: WorkerRun,
    receiver: Receiver,
    collector: OtlpCollector,
    configure: Configure,
) -> None:
    configure(OTEL_TRACES_EXPORTER="otlp")
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.default = Reply(500)
    await post(api)
    await run_worker()  # every scheduled attempt fails: the delivery is dead
    spans = collector.wait_for(has(("POST /ingest/{source}", 1), ("POST", 4)))
    [ingest] = named(spans, "POST /ingest/{source}")
    delivery_id = named(spans, "POST")[0].attributes["relay.delivery_id"]

    # A new tracer, as in a worker started since: the trace is in Redis, not in memory.
    configure(OTEL_TRACES_EXPORTER="otlp", OTEL_SERVICE_NAME="a-later-worker")
    receiver.default = Reply(200)
    r = await api.post(f"/api/deliveries/{delivery_id}/retry", headers=AUTH)
    assert r.status_code == 202, r.text
    await run_worker()
    spans = collector.wait_for(has(("POST", 5)))

    [manual] = [s for s in named(spans, "POST") if s.attributes["relay.attempt"] == 5]
    assert manual.service == "a-later-worker"
    assert (manual.trace_id, manual.parent_span_id) == (ingest.trace_id, ingest.span_id)
    assert manual.attributes["http.response.status_code"] == 200
    assert trace_of(receiver.requests[-1].headers)[:2] == (ingest.trace_id, manual.span_id)


async def test_a_best_effort_attempt_from_the_api_is_in_the_trace(
    api: httpx.AsyncClient, receiver: Receiver, collector: OtlpCollector, configure: Configure
) -> None:
    configure(OTEL_TRACES_EXPORTER="otlp")
    await create_source(api)
    await create_subscription(api, receiver.url, mode="best_effort")
    await post(api)
    spans = collector.wait_for(has(("POST /ingest/{source}", 1), ("POST", 1)))

    [ingest] = named(spans, "POST /ingest/{source}")
    [attempt] = named(spans, "POST")
    assert (attempt.trace_id, attempt.parent_span_id) == (ingest.trace_id, ingest.span_id)
    assert attempt.attributes["relay.delivery_mode"] == "best_effort"
    assert trace_of(receiver.requests[0].headers)[:2] == (ingest.trace_id, attempt.span_id)


async def test_propagation_off_sends_no_traceparent_but_still_traces(
    api: httpx.AsyncClient,
    run_worker: WorkerRun,
    receiver: Receiver,
    collector: OtlpCollector,
    configure: Configure,
) -> None:
    # The traces endpoint, used as given, wins over the base one (where nothing listens).
    configure(propagate=False, OTEL_TRACES_EXPORTER="otlp",
              OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
              OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.endpoint)  # fmt: skip
    await create_source(api)
    await create_subscription(api, receiver.url)
    await post(api, traceparent=PROVIDER_PARENT)
    await run_worker()
    spans = collector.wait_for(has(("POST", 1)))

    assert named(spans, "POST")[0].trace_id == PROVIDER_TRACE
    [request] = receiver.requests
    assert "traceparent" not in request.headers
    assert "tracestate" not in request.headers


async def test_an_unsampled_trace_exports_nothing_and_still_tells_subscribers(
    api: httpx.AsyncClient,
    run_worker: WorkerRun,
    receiver: Receiver,
    collector: OtlpCollector,
    configure: Configure,
) -> None:
    configure(OTEL_TRACES_EXPORTER="otlp", OTEL_TRACES_SAMPLER="parentbased_traceidratio",
              OTEL_TRACES_SAMPLER_ARG="0")  # fmt: skip
    await create_source(api)
    await create_subscription(api, receiver.url)
    await post(api)
    await run_worker()
    tracing.active().flush()

    assert collector.spans == []
    # The sampling decision travels with the trace: the subscriber is told "not sampled".
    [request] = receiver.requests
    assert trace_of(request.headers)[2] is False


@pytest.mark.parametrize("propagate", [True, False])
async def test_tracing_off_exports_nothing_and_passes_only_a_providers_traceparent_on(
    api: httpx.AsyncClient,
    run_worker: WorkerRun,
    receiver: Receiver,
    collector: OtlpCollector,
    configure: Configure,
    redis: aioredis.Redis,
    propagate: bool,
) -> None:
    # An endpoint is set, but OTEL_TRACES_EXPORTER is not: tracing stays off.
    off = configure(propagate=propagate)
    assert not off.enabled
    await create_source(api)
    await create_subscription(api, receiver.url)
    plain = await post(api)
    traced = await post(api, traceparent=PROVIDER_PARENT, tracestate="vendor=opaque")
    await run_worker()

    assert collector.requests == 0
    by_event = {r.headers["webhook-id"]: r.headers for r in receiver.requests}
    assert "traceparent" not in by_event[plain]
    if propagate:
        # The relay is a transparent hop: the subscriber continues the provider's trace.
        assert by_event[traced]["traceparent"] == PROVIDER_PARENT
        assert by_event[traced]["tracestate"] == "vendor=opaque"
    else:
        assert "traceparent" not in by_event[traced]
    # Nothing is stored for an event that came without a trace.
    meta = orjson.loads(await redis.get(Keys.event(plain)))
    assert "tp" not in meta
    assert "ts" not in meta
