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


def wants(subscription: Matchable, source: str, event_type: str | None) -> bool:
    """True when an enabled subscription listens to ``source`` and to this event type."""
    if not subscription.enabled:
        return False
    if source not in subscription.sources and (
        ANY_SOURCE not in subscription.sources or is_internal(source)
    ):
        return False
    return event_type_matches(subscription.event_types, event_type)
