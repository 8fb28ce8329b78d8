"""How the dashboard shows values: every time on it goes through :func:`when`.

Domain and storage keep epoch milliseconds; people read UTC with a relative hint.

    >>> when(0)
    '1970-01-01 00:00:00 UTC'
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from relay.domain.clock import rfc3339

# A body bigger than this is shown cut (the raw bytes stay downloadable whole).
BODY_PREVIEW_BYTES = 64 * 1024
# The most an indented JSON preview may take.
INDENTED_PREVIEW_CHARS = 4 * BODY_PREVIEW_BYTES


def when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ms: int | None) -> str:
    """Machine-readable, for ``<time datetime=...>``: the API's own RFC 3339 form."""
    return "" if ms is None else rfc3339(ms)


def relative(ms: int | None, now_ms: int) -> str:
    """``12 s ago``, ``in 3 min``: enough to tell fresh from stale at a glance."""
    if ms is None:
        return ""
    delta = (ms - now_ms) / 1000
    size = abs(delta)
    if size < 1:
        return "now"
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if size >= seconds:
            amount = f"{int(size // seconds)} {unit}"
            return f"in {amount}" if delta > 0 else f"{amount} ago"
    return "now"  # pragma: no cover - the loop always returns for size >= 1


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def pretty_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """The body as text for a ``<pre>``: JSON indented, anything else decoded as is, cut to
    :data:`BODY_PREVIEW_BYTES`. Returns the text and whether it was cut. The caller escapes
    it: this only decides the layout."""
    cut = len(body) > BODY_PREVIEW_BYTES
    shown = body[:BODY_PREVIEW_BYTES]
    if not cut and "json" in content_type.lower():
        try:
            indented = json.dumps(json.loads(shown), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            # Not JSON, or nested deeper than Python recurses (1,000 levels): as sent.
            pass
        else:
            # Indentation grows with the square of the depth: 900 levels of [] would be a
            # 1.6 MB page. Past a few times the body, as sent reads as well.
            if len(indented) <= INDENTED_PREVIEW_CHARS:
                return indented, False
    return shown.decode("utf-8", errors="replace"), cut


def percent(part: int, whole: int) -> str:
    return "—" if whole == 0 else f"{100 * part / whole:.0f}%"
