"""FIFO ordering keys (pure): which deliveries of a subscription must go out one by one.

A subscription with ``ordering: {"mode": "fifo", "key": ...}`` delivers events with the
same key in the order they were accepted, each only after the one before it succeeded or
died. The key is taken from a stored header (``"header:X-Shopify-Shop-Domain"``) or from
the JSON body with a small JSONPath subset (``"$.repository.id"``, ``"$.items[0].sku"``).
Without a key, or when an event has none, the whole subscription is one FIFO.

    >>> key_of("$.repository.full_name", {}, b'{"repository": {"full_name": "a/b"}}')
    'a/b'
    >>> key_of("header:x-shop", {"x-shop": "s1"}, b"")
    's1'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

HEADER_PREFIX = "header:"
# $.a.b, $.a[0].b, $["odd key"]: enough to point at an id, nothing that could run away.
_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d{1,6})\]|\["([^"\\]{1,256})"\]')
MAX_KEY_CHARS = 256


def parse_path(path: str) -> list[str | int]:
    """The steps of a JSONPath subset; ValueError when it is not one."""
    if not path.startswith("$"):
        raise ValueError("a JSON path starts with $")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            raise ValueError(f"cannot read the JSON path at {path[pos : pos + 16]!r}")
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name or quoted))
        pos = match.end()
    if not steps or len(steps) > 32:
        raise ValueError("a JSON path names 1 to 32 steps")
    return steps


def validate_key(spec: str) -> str:
    """A valid ordering key spec, or ValueError."""
    if spec.startswith(HEADER_PREFIX):
        name = spec[len(HEADER_PREFIX) :]
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~\-]{1,128}", name):
            raise ValueError("header: must be followed by a header name")
        return HEADER_PREFIX + name.lower()
    parse_path(spec)
    return spec


def _walk(value: Any, steps: list[str | int]) -> Any:
    for step in steps:
        container = value if isinstance(step, int) else None
        if isinstance(container, list) and isinstance(step, int) and step < len(container):
            value = container[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return None
    return value


def key_of(spec: str | None, headers: Mapping[str, str], body: bytes) -> str:
    """The event's ordering key; "" (the subscription's one FIFO) when it has none."""
    if not spec:
        return ""
    if spec.startswith(HEADER_PREFIX):
        return headers.get(spec[len(HEADER_PREFIX) :].lower(), "")[:MAX_KEY_CHARS]
    try:
        found = _walk(orjson.loads(body), parse_path(spec))
    except (orjson.JSONDecodeError, ValueError):
        return ""
    if found is None or isinstance(found, dict | list):
        return ""
    if isinstance(found, bool):
        return "true" if found else "false"
    return str(found)[:MAX_KEY_CHARS]
