"""Which subscriptions want an event (pure).

Event-type patterns are shell-style globs matched case-sensitively, so ``pull_request.*``
takes ``pull_request.opened`` and ``*`` takes everything, including events with no type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Protocol

from relay.domain.ops import is_internal

ANY_SOURCE = "*"


class Matchable(Protocol):
    @property
    def enabled(self) -> bool: ...
    @property
    def sources(self) -> Sequence[str]: ...
    @property
    def event_types(self) -> Sequence[str]: ...


def event_type_matches(patterns: Iterable[str], event_type: str | None) -> bool:
    name = event_type or ""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def listens_to(sources: Sequence[str], source: str) -> bool:
    """A subscription with these sources takes events of ``source`` ("*" takes every
    source's, but not the relay's own)."""
    return source in sources or (ANY_SOURCE in sources and not is_internal(source))


def wants(subscription: Matchable, source: str, event_type: str | None) -> bool:
    """True when an enabled subscription listens to ``source`` and to this event type."""
    if not subscription.enabled:
        return False
    if not listens_to(subscription.sources, source):
        return False
    return event_type_matches(subscription.event_types, event_type)


def check_glob(pattern: str) -> str:
    """Refuse a pattern fnmatch would read differently from what was meant: an unclosed
    ``[`` is taken as a literal, so ``pull_request.[opened`` would silently never match.

        >>> check_glob("pull_request.[!c]*")
        'pull_request.[!c]*'
    """
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] != "[":
            i += 1
            continue
        # As fnmatch reads a class: "!" negates, and a "]" right after the opening is literal.
        j = i + 1
        if j < n and pattern[j] == "!":
            j += 1
        if j < n and pattern[j] == "]":
            j += 1
        close = pattern.find("]", j)
        if close < 0:
            raise ValueError(
                f"'[' at position {i} is never closed; write '[[]' to match a literal '['"
            )
        i = close + 1
    return pattern
