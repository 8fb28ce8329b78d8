"""Transformations (pure): what a subscriber receives instead of the provider's body.

A transform is JSON with up to two parts:

    {"body": "{repo: repository.full_name, ref: ref, commits: commits[*].id}",
     "headers": {"X-Repo": "{{ body.repository.full_name }}", "X-Kind": "gh-{{ event.type }}"}}

``body`` is a JMESPath expression over the event's JSON body; its result, as compact JSON
(``application/json``), is what is sent and signed. ``headers`` are templates: the text
between ``{{`` and ``}}`` is a JMESPath expression over ``{"body": ..., "headers": {stored
headers}, "event": {"id", "source", "type"}}``: the event's own fields only. A value that
is null or empty leaves the header out.

Nothing here runs code, touches the network or a file; expressions are bounded as
:mod:`relay.domain.expressions` says, and the body's output is measured before it is
serialised. A transform is deterministic: every retry of a delivery sends the same bytes as
long as the transform is not edited, and each attempt records the :attr:`Transform.version`
that produced what it sent.

    >>> t = compile_transform({"body": "{ref: ref}"})
    >>> apply(t, EventFacts({}, b'{"ref": "main", "big": [1, 2]}'), max_bytes=100).body
    b'{"ref":"main"}'
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from jmespath.parser import ParsedResult
from pydantic import WithJsonSchema

from relay.domain.expressions import (
    ExpressionError,
    compile_expression,
    json_size_within,
    search,
)
from relay.domain.filters import AS_SPEC, EventFacts, SpecError, compiled_from

MAX_HEADERS = 32
MAX_HEADER_VALUE_CHARS = 1024
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~\-]{1,128}$")
# What may go in a header value as it is; anything else is percent-encoded.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
JSON = "application/json"


class TransformFailed(Exception):
    """A transform could not shape this event; the delivery dies with this reason."""


@dataclass(frozen=True, slots=True)
class _Template:
    parts: tuple[str | ParsedResult, ...]  # literal text and expressions, in order


@dataclass(frozen=True, slots=True)
class Transform:
    spec: dict[str, Any]
    version: str  # a digest of the spec: which transform produced what was sent
    body: ParsedResult | None
    headers: tuple[tuple[str, _Template], ...]


@dataclass(frozen=True, slots=True)
class Shaped:
    """What one delivery sends: the body, its content-type, the templated headers."""

    body: bytes
    content_type: str
    headers: dict[str, str]


def _expression(text: str, path: str) -> ParsedResult:
    try:
        return compile_expression(text.strip())
    except ExpressionError as exc:
        raise SpecError(path, str(exc)) from None


def _template(text: Any, path: str) -> _Template:
    if not isinstance(text, str) or not 0 < len(text) <= MAX_HEADER_VALUE_CHARS:
        raise SpecError(path, f"a header template is a string of 1 to "
                                f"{MAX_HEADER_VALUE_CHARS} characters")  # fmt: skip
    parts: list[str | ParsedResult] = []
    pos = 0
    for match in _TEMPLATE.finditer(text):
        parts += [text[pos : match.start()], _expression(match.group(1), path)]
        pos = match.end()
    parts.append(text[pos:])
    if any(isinstance(p, str) and ("{{" in p or "}}" in p) for p in parts):
        raise SpecError(path, "unbalanced {{ }} in the template")
    return _Template(tuple(p for p in parts if p != ""))


def compile_transform(spec: Any) -> Transform:
    """Check and compile a transform; :class:`SpecError` names where it is wrong."""
    if not isinstance(spec, dict) or not spec:
        raise SpecError("", 'a transform is an object with "body" and/or "headers"')
    unknown = sorted(set(spec) - {"body", "headers"})
    if unknown:
        raise SpecError(unknown[0], 'unknown field; a transform has "body" and "headers"')
    body = spec.get("body")
    if body is not None and not isinstance(body, str):
        raise SpecError("body", "a JMESPath expression (a string)")
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict) or len(headers) > MAX_HEADERS:
        raise SpecError("headers", f"an object of at most {MAX_HEADERS} header templates")
    for name in headers:
        if not _HEADER_NAME.match(name):
            raise SpecError(f"headers.{name}", "not a header name")
    canonical = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
    return Transform(
        spec=spec,
        version=hashlib.sha256(canonical).hexdigest()[:12],
        body=None if body is None else _expression(body, "body"),
        headers=tuple((n, _template(t, f"headers.{n}")) for n, t in headers.items()),
    )


def _header_value(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return quote(text, safe=_SAFE)


def render(template: _Template, scope: dict[str, Any]) -> str:
    """A header template's value: visible ASCII, at most MAX_HEADER_VALUE_CHARS."""
    text = "".join(
        part if isinstance(part, str) else _header_value(search(part, scope))
        for part in template.parts
    )
    return text.strip()[:MAX_HEADER_VALUE_CHARS]


def apply(transform: Transform, facts: EventFacts, *, max_bytes: int) -> Shaped:
    """The body and headers one delivery sends; :class:`TransformFailed` when the body is
    not JSON (and the transform reshapes it) or the result exceeds ``max_bytes``."""
    body = facts.json if facts.is_json else None
    headers: dict[str, str] = {}
    if transform.headers:
        scope = {
            "body": body,
            "headers": dict(facts.headers),
            "event": {"id": facts.event_id, "source": facts.source, "type": facts.event_type},
        }
        for name, template in transform.headers:
            value = render(template, scope)
            if value:
                headers[name] = value
    if transform.body is None:
        return Shaped(facts.body, "", headers)
    if not facts.is_json:
        raise TransformFailed("the event's body is not JSON; the transform needs JSON")
    result = search(transform.body, body)
    if not json_size_within(result, max_bytes):
        raise TransformFailed(f"the transformed body exceeds {max_bytes} bytes")
    try:
        out = orjson.dumps(result)
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (254 levels)
        raise TransformFailed(f"the transformed body cannot be written as JSON: {exc}") from None
    if len(out) > max_bytes:
        raise TransformFailed(f"the transformed body exceeds {max_bytes} bytes")
    return Shaped(out, JSON, headers)


TransformField = Annotated[
    Transform,
    compiled_from(compile_transform, Transform),
    AS_SPEC,
    WithJsonSchema(
        {
            "type": "object",
            "description": 'JMESPath "body" and header templates {"X-Repo": '
            '"{{ body.repository.full_name }}"}; see the README.',
        }
    ),
]
