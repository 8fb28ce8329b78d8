"""W3C trace context parsing (pure) and the OTEL_* settings tracing accepts or refuses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from relay.domain.tracecontext import TraceContext, valid_traceparent
from relay.observability import tracing

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (f"00-{TRACE}-{SPAN}-01", f"00-{TRACE}-{SPAN}-01"),
        (f" 00-{TRACE}-{SPAN}-00 ", f"00-{TRACE}-{SPAN}-00"),
        # A later version: what we know of it, as version 00.
        (f"01-{TRACE}-{SPAN}-01-what-comes-next", f"00-{TRACE}-{SPAN}-01"),
        (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{TRACE}-{SPAN}-01", None),  # a version the specification forbids
        (f"00-{'0' * 32}-{SPAN}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-{SPAN}-01", None),  # lower-case hex only
        (f"00-{TRACE[:-1]}-{SPAN}-01", None),
        ("", None),
        (None, None),
        ("x" * 300, None),
    ],
)
def test_only_a_valid_traceparent_is_kept(given: str | None, kept: str | None) -> None:
    assert valid_traceparent(given) == kept


def test_tracestate_goes_with_a_valid_traceparent_only() -> None:
    parent = f"00-{TRACE}-{SPAN}-01"
    found = TraceContext.from_headers({"traceparent": parent, "tracestate": "a=1,b=2"})
    assert found == TraceContext(parent, "a=1,b=2")
    assert found.headers() == {"traceparent": parent, "tracestate": "a=1,b=2"}
    assert TraceContext.from_headers({"tracestate": "a=1"}) is None
    # Too long, or not printable ASCII: dropped whole, the traceparent kept.
    assert TraceContext.from_headers({"traceparent": parent, "tracestate": "a=" + "x" * 600}) \
        == TraceContext(parent)  # fmt: skip
    assert TraceContext.from_headers({"traceparent": parent, "tracestate": "a=\x01"}) \
        == TraceContext(parent)  # fmt: skip
    assert TraceContext(parent).headers() == {"traceparent": parent}


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "jaeger is not supported"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "http/json",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, "sometimes"),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_TRACES_SAMPLER": "traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "1.5",
            },
            "between 0 and 1",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER_ARG": "half"}, "not a number"),
    ],
)
def test_settings_the_relay_cannot_honour_are_refused_at_start(
    env: dict[str, str], complaint: str
) -> None:
    with pytest.raises(tracing.TracingConfigError, match=complaint):
        tracing.configure(True, env)
    assert not tracing.active().enabled


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"},
    ],
)
def test_tracing_is_off_unless_an_exporter_is_named(env: dict[str, str]) -> None:
    assert not tracing.configure(True, env).enabled


def test_tracing_on_names_the_span_on_log_lines() -> None:
    try:
        on = tracing.configure(True, {"OTEL_TRACES_EXPORTER": "otlp"})
        assert on.enabled
        assert on.log_processors()
    finally:
        tracing.configure(True, {})


def test_off_the_api_and_worker_never_import_the_sdk() -> None:
    # Off means free: no SDK, exporter or protobuf module in a process that serves and
    # delivers. (OpenTelemetry's API is there: FastAPI imports it for its own telemetry,
    # which stays off as long as no global provider is set, and the relay sets none.)
    code = (
        "import sys\n"
        "from relay.observability import logs, tracing\n"
        "tracing.configure(True)\n"
        "logs.configure('json')\n"
        "import relay.api.app, workers.main, relay.cli.main\n"
        "relay.api.app.create_app()\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.exporter', 'opentelemetry.proto')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    env = {"RELAY_REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
