"""A real OTLP/HTTP trace endpoint on 127.0.0.1 that decodes what it receives.

The tracing tests export to it as they would to Jaeger or an OpenTelemetry Collector, and
read back the spans; ``benchmarks/throughput.py --tracing`` sends its spans here. Each
request body is an ``ExportTraceServiceRequest`` (protobuf, maybe gzip-compressed),
decoded with ``opentelemetry-proto`` (the ``tracing`` extra).

    >>> c = OtlpCollector(); c.endpoint.endswith("/v1/traces")
    True
    >>> c.close()
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from relay.devtools.receiver import POLL_S


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str  # hex, as W3C traceparent writes it
    span_id: str
    parent_span_id: str  # "" for a root span
    name: str
    kind: str  # SERVER, CLIENT, INTERNAL...
    attributes: dict[str, Any]
    status: str  # UNSET, OK, ERROR
    service: str
    links: tuple[tuple[str, str], ...] = ()


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    return None if which is None else getattr(v, which)


class OtlpCollector:
    """``collector.endpoint`` takes spans; ``collector.wait_for(...)`` reads them.

    With ``keep=False`` it only counts the spans (the benchmark's collector, which should
    cost the machine as little as it can).
    """

    def __init__(self, *, keep: bool = True) -> None:
        self.spans: list[ReceivedSpan] = []
        self.span_count = 0
        self.requests = 0
        self.bytes = 0
        self._keep = keep
        self._cond = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces" and collector._take(body)
                self.send_response(200 if ok else 400)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # As the receiver's: close() waits up to one poll interval (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def endpoint(self) -> str:
        return self.base_url + "/v1/traces"

    def _take(self, body: bytes) -> bool:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception:
            return False
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        spans = list(_spans(request)) if self._keep else []
        with self._cond:
            self.requests += 1
            self.bytes += len(body)
            self.span_count += count
            self.spans.extend(spans)
            self._cond.notify_all()
        return True

    def wait_for(
        self, found: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 10.0
    ) -> list[ReceivedSpan]:
        """Every span received so far, once ``found`` says they are enough."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not found(self.spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [(s.name, s.trace_id[:8]) for s in self.spans]
                    raise TimeoutError(f"the spans expected did not arrive; got {names}")
                self._cond.wait(left)
            return list(self.spans)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _spans(request: Any) -> Any:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    name=span.name,
                    kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    status=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
                    service=str(resource.get("service.name", "")),
                    links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
                )
