"""W3C Trace Context: the ``traceparent`` (and ``tracestate``) a webhook carries.

A provider may send one with its webhook; the relay keeps it with the event (its own when
tracing is on, else the provider's as it came) and sends it on with every attempt, so one
trace runs from the provider through the relay's queue to each subscriber. Only what the
specification allows is kept: anything else is dropped, never stored or forwarded.

>>> parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
>>> TraceContext.from_headers({"traceparent": parent}).trace_id
'4bf92f3577b34da6a3ce929d0e0e4736'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# version-trace_id-parent_id-flags; a later version may append fields after the flags.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
# At most 32 list members of printable ASCII; the specification lets a receiver drop a
# longer one whole rather than cut a member in two.
_TRACESTATE_MAX = 512
_TRACESTATE_CHARS = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class TraceContext:
    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> TraceContext | None:
        """The valid trace context in these (lower-case) headers, or None."""
        parent = valid_traceparent(headers.get("traceparent"))
        if parent is None:
            return None
        state = headers.get("tracestate")
        if state is not None and (
            len(state) > _TRACESTATE_MAX or not _TRACESTATE_CHARS.fullmatch(state)
        ):
            state = None
        return cls(parent, state.strip() or None if state is not None else None)

    def headers(self) -> dict[str, str]:
        """The headers that carry this context to the next hop."""
        if self.tracestate:
            return {"traceparent": self.traceparent, "tracestate": self.tracestate}
        return {"traceparent": self.traceparent}


def valid_traceparent(value: str | None) -> str | None:
    """``value`` as a version-00 traceparent if the specification accepts it, else None.

    A later version's extra fields are dropped: what we forward must be a version we know.
    """
    if value is None or len(value) > 256:
        return None
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, extra = found.groups()
    if version == "ff" or (version == "00" and extra):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return f"00-{trace_id}-{span_id}-{flags}"
