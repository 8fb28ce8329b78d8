"""The OpenTelemetry SDK side of :mod:`relay.observability.tracing`, imported only when on.

Spans follow OpenTelemetry's HTTP semantic conventions where they fit: the ingest span is
a SERVER span named ``POST /ingest/{source}`` (``http.request.method``, ``http.route``,
``url.path``, ``http.response.status_code``); an attempt is a CLIENT span named ``POST``
(``server.address``, ``server.port``, ``url.scheme``, ``http.response.status_code``,
``error.type``, ``http.request.resend_count``). ``url.full`` is left out on purpose: a
subscriber's URL often carries its credential (Slack's and Discord's put it in the path),
and the relay logs only its host for the same reason. The relay's own ids are ``relay.*``
attributes.

The relay keeps its own ``TracerProvider`` and sets no global one: FastAPI's native
telemetry (which follows the global providers) stays off, so the ingest request is one span,
not one per ASGI step.

Exported in batches by a background thread (``BatchSpanProcessor``): a span costs the
request or attempt that makes it a few microseconds, never a network round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from relay.domain.tracecontext import TraceContext
from relay.observability.tracing import (
    AttemptTrace,
    FannedOut,
    FanoutTrace,
    IngestTrace,
    TracedEvent,
    Tracing,
    TracingConfigError,
)

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

    from relay.domain.models import Delivery, Event
    from relay.domain.outcome import AttemptResult

SERVICE_NAME = "webhook-relay"
_PROPAGATOR = TraceContextTextMapPropagator()
_INGEST_ROUTE = "/ingest/{source}"


def _parent(trace_context: TraceContext | None) -> otel_context.Context | None:
    """The context a span continues: the one stored with the event (None: a new trace)."""
    if trace_context is None:
        return None
    return _PROPAGATOR.extract(trace_context.headers())


def _carried(span: trace.Span) -> TraceContext | None:
    """The W3C headers that continue ``span``'s trace at the next hop."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    parent = carrier.get("traceparent")
    return TraceContext(parent, carrier.get("tracestate") or None) if parent else None


class _Scope:
    """A span's ``with`` block: the span is the current one (what log lines name) inside
    it, and ends by the end of it, failed if an exception ended the block before an answer
    was known."""

    __slots__ = ("_token", "answered", "ended", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.answered = self.ended = False
        self._token: object | None = None

    def enter(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def exit(self, exc: BaseException | None) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        if not self.answered:
            _failed(self.span, exc)
        self.end()

    def end(self) -> None:
        if not self.ended:
            self.span.end()
            self.ended = True


def _failed(span: trace.Span, exc: BaseException | None) -> None:
    if exc is not None and span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, exc.__class__.__name__))


class _Scoped:
    """The ``with`` block of a span kept in ``_scope``."""

    __slots__ = ()
    _scope: _Scope

    def __enter__(self) -> Self:
        self._scope.enter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._scope.exit(exc)


class _Ingest(_Scoped, IngestTrace):
    __slots__ = ("_scope",)

    def __init__(self, tracer: trace.Tracer, headers: Mapping[str, str], source: str,
                 path: str) -> None:  # fmt: skip
        parent = _PROPAGATOR.extract(headers) if "traceparent" in headers else None
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "http.route": _INGEST_ROUTE,
            "url.path": path,
            "relay.source": source,
        }
        if agent := headers.get("user-agent"):
            attributes["user_agent.original"] = agent[:256]
        span = tracer.start_span(
            f"POST {_INGEST_ROUTE}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        self._scope = _Scope(span)
        super().__init__(_carried(span))

    def accepted(self, event_id: str, event_type: str | None) -> None:
        span = self._scope.span
        span.set_attribute("relay.event_id", event_id)
        if event_type:
            span.set_attribute("relay.event_type", event_type)

    def answered(self, status: int) -> None:
        span = self._scope.span
        self._scope.answered = True
        span.set_attribute("http.response.status_code", status)
        # A 4xx is the provider's mistake, not the server's: only a 5xx marks a SERVER span
        # as failed (the HTTP conventions).
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))


class _Fanout(FanoutTrace):
    __slots__ = ("_spans",)

    def __init__(self, tracer: trace.Tracer, events: Sequence[TracedEvent]) -> None:
        # Only events that came with a trace: one accepted while tracing was off would be a
        # trace of a single span.
        self._spans = [
            None if event.trace is None else self._start(tracer, event, len(events))
            for event in events
        ]

    @staticmethod
    def _start(tracer: trace.Tracer, event: TracedEvent, batch: int) -> trace.Span:
        return tracer.start_span(
            "relay.fanout",
            context=_parent(event.trace),
            kind=SpanKind.INTERNAL,
            attributes={
                "relay.event_id": event.id,
                "relay.source": event.source,
                "relay.fanout.batch_size": batch,
            },
        )

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for span in self._spans:
            if span is not None:
                _failed(span, exc)
                span.end()

    def committed(self, planned: Sequence[FannedOut | None]) -> None:
        for span, done in zip(self._spans, planned, strict=True):
            if span is None:
                continue
            if done is None:
                # Another process fanned it out first (the recovery cron, say).
                span.set_attribute("relay.fanout.already_done", True)
                continue
            span.set_attribute("relay.deliveries", len(done.deliveries))
            span.set_attribute("relay.skipped", len(done.skipped))


class _Attempt(_Scoped, AttemptTrace):
    __slots__ = ("_scope",)

    def __init__(self, tracer: trace.Tracer, event: Event, delivery: Delivery, number: int,
                 propagate: bool) -> None:  # fmt: skip
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "relay.attempt": number,
            "relay.delivery_id": delivery.id,
            "relay.subscription_id": delivery.subscription_id,
            "relay.event_id": event.id,
            "relay.source": event.source,
            "relay.delivery_mode": delivery.mode.value,
        }
        if event.event_type:
            attributes["relay.event_type"] = event.event_type
        if number > 1:
            attributes["http.request.resend_count"] = number - 1
        span = tracer.start_span(
            "POST", context=_parent(event.trace), kind=SpanKind.CLIENT, attributes=attributes
        )
        self._scope = _Scope(span)
        carried = _carried(span) if propagate else None
        super().__init__(carried.headers() if carried else {})

    def sending(self, url: str) -> None:
        self._scope.span.set_attributes(_server(url))

    def answered(self, result: AttemptResult) -> None:
        span = self._scope.span
        status = result.status_code
        error = result.error or (str(status) if status is not None and status >= 400 else None)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, result.error_message or error))
        # The span is the HTTP call: recording the attempt in Redis is not in it.
        self._scope.answered = True
        self._scope.end()


@functools.lru_cache(maxsize=4096)
def _server(url: str) -> dict[str, str | int]:
    """A subscriber's host, port and scheme (parsed once per URL: every attempt asks)."""
    parts = urlsplit(url)
    found: dict[str, str | int] = {
        "url.scheme": parts.scheme,
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }
    if parts.hostname:
        found["server.address"] = parts.hostname
    return found


def add_trace_ids(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """structlog processor: the current span's ids on every line logged inside it."""
    found = trace.get_current_span().get_span_context()
    if found.is_valid:
        event.setdefault("trace_id", format(found.trace_id, "032x"))
        event.setdefault("span_id", format(found.span_id, "016x"))
    return event


class OtelTracing(Tracing):
    enabled = True

    def __init__(self, provider: TracerProvider, *, propagate: bool) -> None:
        super().__init__(propagate=propagate)
        self._provider = provider
        self._tracer = provider.get_tracer("relay")

    @classmethod
    def from_environ(
        cls, env: Mapping[str, str], exporters: Sequence[str], *, propagate: bool
    ) -> OtelTracing:
        name = env.get("OTEL_SERVICE_NAME", "").strip() or SERVICE_NAME
        provider = TracerProvider(
            sampler=_sampler(env),
            resource=Resource.create({"service.name": name}),
            shutdown_on_exit=True,
        )
        delay = _number(env, "OTEL_BSP_SCHEDULE_DELAY")
        for exporter in _span_exporters(env, exporters):
            provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
        return cls(provider, propagate=propagate)

    def ingest(self, headers: Mapping[str, str], source: str, path: str) -> IngestTrace:
        return _Ingest(self._tracer, headers, source, path)

    def fanout(self, events: Sequence[TracedEvent]) -> FanoutTrace:
        return _Fanout(self._tracer, events)

    def attempt(self, event: Event, delivery: Delivery, number: int) -> AttemptTrace:
        return _Attempt(self._tracer, event, delivery, number, self.propagate)

    def log_processors(self) -> list[Processor]:
        return [add_trace_ids]

    def flush(self) -> None:
        self._provider.force_flush()

    def shutdown(self) -> None:
        self._provider.shutdown()


def _number(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise TracingConfigError(f"{name}={raw!r} is not a number") from None


def _sampler(env: Mapping[str, str]) -> Sampler:
    """``OTEL_TRACES_SAMPLER`` and its argument, as the specification names them; the
    default, ``parentbased_always_on``, follows a provider's sampled flag."""
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    ratio = _number(env, "OTEL_TRACES_SAMPLER_ARG")
    if "traceidratio" in name and ratio is not None and not 0 <= ratio <= 1:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={ratio:g} is not between 0 and 1")
    roots: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(1.0 if ratio is None else ratio),
    }
    base = name.removeprefix("parentbased_")
    if base not in roots:
        raise TracingConfigError(
            f"OTEL_TRACES_SAMPLER={name} is not supported ("
            "always_on, always_off, traceidratio, or parentbased_ before one of them)"
        )
    return ParentBased(roots[base]) if name.startswith("parentbased_") else roots[base]


def _span_exporters(env: Mapping[str, str], names: Sequence[str]) -> list[SpanExporter]:
    found: list[SpanExporter] = []
    for name in names:
        if name == "console":
            found.append(ConsoleSpanExporter())
            continue
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if protocol != "http/protobuf":
            raise TracingConfigError(
                f"OTLP protocol {protocol!r} is not supported: set "
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (collectors take it on port 4318)"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        found.append(OTLPSpanExporter(endpoint=_endpoint(env)))
    return found


def _endpoint(env: Mapping[str, str]) -> str:
    """Where spans go: the traces endpoint as given, or the base endpoint's ``/v1/traces``."""
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "http://localhost:4318"
    return base.rstrip("/") + "/v1/traces"
