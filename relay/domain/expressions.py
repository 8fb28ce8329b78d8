"""Bounded JMESPath (pure): the one expression language of filters and transforms.

JMESPath (https://jmespath.org, the ``jmespath`` package AWS's CLI and boto3 ship with) is a
specified, side-effect-free query language: no assignment, no loops beyond projections over
the input, no I/O. It has no time limit of its own, so the relay bounds it from outside:

- the input is capped already (a body is at most ``RELAY_MAX_BODY_BYTES``);
- an expression is refused at write time beyond :data:`MAX_CHARS` characters or
  :data:`MAX_NODES` syntax nodes, which caps how many times it can repeat its input;
- ``to_string`` is refused: nested, it doubles its escapes at every level, the one way a short
  expression grows its output exponentially;
- the output's size is measured, within a budget, before anything serialises it
  (:func:`json_size_within`), because shared references make a small result expand on
  serialisation.

    >>> compile_expression("repository.full_name").search({"repository": {"full_name": "a/b"}})
    'a/b'
"""

from __future__ import annotations

from typing import Any, cast

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

MAX_CHARS = 1024
MAX_NODES = 256
REFUSED_FUNCTIONS = frozenset({"to_string"})


class ExpressionError(ValueError):
    """An expression that cannot be used: it does not parse, or it is beyond the limits."""


def _nodes(tree: dict[str, Any]) -> tuple[int, set[str]]:
    """How many nodes a parsed expression has, and the functions it calls."""
    count, functions, stack = 0, set(), [tree]
    while stack:
        node = stack.pop()
        count += 1
        if node.get("type") == "function_expression":
            functions.add(str(node.get("value")))
        stack.extend(c for c in node.get("children", ()) if isinstance(c, dict))
    return count, functions


def compile_expression(text: str) -> ParsedResult:
    """A JMESPath expression within the relay's limits, or :class:`ExpressionError`."""
    if not text.strip():
        raise ExpressionError("an expression cannot be empty")
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"an expression has at most {MAX_CHARS} characters")
    try:
        parsed = jmespath.compile(text)
    except JMESPathError as exc:
        reason = getattr(exc, "msg", None) or str(exc).splitlines()[0]
        at = getattr(exc, "lex_position", None)
        where = f" at character {at}" if isinstance(at, int) else ""
        raise ExpressionError(f"not a valid JMESPath expression{where}: {reason}") from None
    count, functions = _nodes(cast(dict[str, Any], parsed.parsed))
    if count > MAX_NODES:
        raise ExpressionError(f"an expression has at most {MAX_NODES} parts; this has {count}")
    refused = sorted(functions & REFUSED_FUNCTIONS)
    if refused:
        raise ExpressionError(f"function not allowed here: {', '.join(refused)}")
    return parsed


def search(expression: ParsedResult, data: Any) -> Any:
    """Evaluate; a runtime type error (``abs('x')``) is None, as a missing value is."""
    try:
        return expression.search(data)
    except JMESPathError:
        return None


def json_size_within(value: Any, budget: int) -> bool:
    """Whether ``value`` serialises to about ``budget`` bytes or fewer, found without
    serialising it: every node costs at least a byte, so the walk stops within ``budget``
    steps however much a result repeats itself. Iterative: parsed bodies nest deeper than
    Python's recursion limit."""
    left, stack = budget, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            left -= len(item) + 2
        elif isinstance(item, dict):
            left -= 2 + len(item)
            for key, inner in item.items():
                left -= len(key) + 3
                stack.append(inner)
        elif isinstance(item, list):
            left -= 2 + len(item)
            stack.extend(item)
        else:
            left -= 5 if item is not None else 4
        if left < 0:
            return False
    return True
