"""OpenTelemetry traces from ingest to every attempt; off by default, and then free.

One webhook is one trace: the ingest request (a SERVER span), its fan-out (an INTERNAL
span) and each attempt to each subscriber (a CLIENT span), however many hours later a
retry runs and whichever process makes it. The trace crosses the queue as a W3C
``traceparent`` kept in the event's record (one short field, written by the same ingest
step that stores the event, and read back with the claimed delivery): attempts are children
of the ingest span.

This module imports no OpenTelemetry. While tracing is off (``OTEL_TRACES_EXPORTER`` unset
or ``none``) :func:`active` is a :class:`Tracing` that makes no span and only passes a
provider's trace context through to subscribers (``RELAY_TRACE_PROPAGATE``); the SDK side
is :mod:`relay.observability.otel`, imported by :func:`configure` only when tracing is on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from relay.domain.tracecontext import TraceContext

if TYPE_CHECKING:
    from structlog.typing import Processor

    from relay.domain.models import Delivery, Event
    from relay.domain.outcome import AttemptResult


class TracedEvent(Protocol):
    """What a fan-out span needs of an event (relay.delivery.fanout.EventRef)."""

    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def trace(self) -> TraceContext | None: ...


class FannedOut(Protocol):
    """What fan-out made of an event (relay.delivery.fanout.Planned)."""

    @property
    def deliveries(self) -> Sequence[object]: ...
    @property
    def skipped(self) -> Sequence[object]: ...


class TracingConfigError(ValueError):
    """The ``OTEL_*`` variables ask for something the relay cannot do."""


class _Block:
    """A ``with`` block around the work a span describes; off, it does nothing."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class IngestTrace(_Block):
    """One ingest request's part in its trace. ``context`` is what is stored with the event
    (None: nothing). While tracing is off it only carries the provider's context."""

    __slots__ = ("context",)

    def __init__(self, context: TraceContext | None) -> None:
        self.context = context

    def accepted(self, event_id: str, event_type: str | None) -> None:
        """The event this request stored (or found stored, for a duplicate)."""

    def answered(self, status: int) -> None:
        """The HTTP status the provider gets."""


class FanoutTrace(_Block):
    """The fan-out of a batch of events: one span per traced event."""

    __slots__ = ()

    def committed(self, planned: Sequence[FannedOut | None]) -> None:
        """What fan-out made of each event, in the order given."""


class AttemptTrace(_Block):
    """One attempt. ``outgoing`` holds the trace headers the subscriber gets (none when
    there is no trace to continue, or propagation is off)."""

    __slots__ = ("outgoing",)

    def __init__(self, outgoing: Mapping[str, str]) -> None:
        self.outgoing = outgoing

    def sending(self, url: str) -> None:
        """The request goes to ``url``."""

    def answered(self, result: AttemptResult) -> None:
        """The HTTP call is over: its span ends here (recording the attempt is not in it)."""


_NO_INGEST = IngestTrace(None)
_NO_FANOUT = FanoutTrace()
_NO_ATTEMPT = AttemptTrace({})


class Tracing:
    """Tracing off: no spans; a provider's ``traceparent`` is kept with its event and sent
    on to subscribers as it came, when ``propagate`` is set."""

    enabled = False

    def __init__(self, *, propagate: bool) -> None:
        self.propagate = propagate

    def ingest(self, headers: Mapping[str, str], source: str, path: str) -> IngestTrace:
        """The trace of one ``POST /ingest/{source}``; ``headers`` have lower-case names."""
        if not self.propagate or "traceparent" not in headers:
            return _NO_INGEST
        context = TraceContext.from_headers(headers)
        return _NO_INGEST if context is None else IngestTrace(context)

    def fanout(self, events: Sequence[TracedEvent]) -> FanoutTrace:
        return _NO_FANOUT

    def attempt(self, event: Event, delivery: Delivery, number: int) -> AttemptTrace:
        trace = event.trace
        if trace is None or not self.propagate:
            return _NO_ATTEMPT
        return AttemptTrace(trace.headers())

    def log_processors(self) -> list[Processor]:
        """structlog processors that name the current span on each line (none when off)."""
        return []

    def flush(self) -> None:
        """Export what has ended (blocking: call it from a thread in async code)."""

    def shutdown(self) -> None:
        """Export what has ended and stop exporting."""


_active = Tracing(propagate=True)


def active() -> Tracing:
    """This process's tracing, as :func:`configure` last set it up."""
    return _active


def configure(propagate: bool, environ: Mapping[str, str] | None = None) -> Tracing:
    """Set up this process's tracing from the ``OTEL_*`` variables (``os.environ`` unless
    given). Raises :class:`TracingConfigError` for a setting the relay cannot honour."""
    global _active
    env: Mapping[str, str] = os.environ if environ is None else environ
    exporters = _exporters(env)
    tracing: Tracing
    if exporters and env.get("OTEL_SDK_DISABLED", "").strip().lower() != "true":
        try:
            from relay.observability import otel
        except ImportError as exc:
            raise TracingConfigError(
                f"OTEL_TRACES_EXPORTER={','.join(exporters)} needs OpenTelemetry's SDK: "
                "pip install 'webhook-relay[tracing]' (the Docker image has it)"
            ) from exc
        tracing = otel.OtelTracing.from_environ(env, exporters, propagate=propagate)
    else:
        tracing = Tracing(propagate=propagate)
    previous, _active = _active, tracing
    previous.shutdown()
    return tracing


def _exporters(env: Mapping[str, str]) -> list[str]:
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    chosen = [n for n in names if n and n != "none"]
    unknown = sorted(set(chosen) - {"otlp", "console"})
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not supported (otlp, console or none)"
        )
    return chosen
