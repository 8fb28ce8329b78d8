"""When to log something that can repeat thousands of times a second (pure).

A refusal that anyone can cause (a connection past a client's limit, a body past the
budget) must not cost a log line each: a flood of them would fill the disk the operator
reads them on. :class:`LogSampler` says to log the first of each key (a reason and a
client, say) and then at most one line per key per interval, with how many came since the
last line, so that the counts in the log still add up.

    >>> sampler = LogSampler(interval_s=10)
    >>> sampler.seen("too_many_connections", 0), sampler.seen("too_many_connections", 1)
    (1, None)
    >>> sampler.seen("too_many_connections", 11), sampler.seen("headers_timeout", 11)
    (2, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class LogSampler:
    """Bounded: the ``max_keys`` most recently seen keys are kept (a flood from many
    clients forgets the oldest, it does not grow without end)."""

    def __init__(self, interval_s: float = 10.0, max_keys: int = 10_000) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        # key -> (when it was last logged, how many came since)
        self._keys: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def seen(self, key: Hashable, now: float) -> int | None:
        """Count one occurrence; how many to log now (None: stay quiet)."""
        found = self._keys.get(key)
        if found is None:
            self._keys[key] = (now, 0)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
            return 1
        self._keys.move_to_end(key)
        logged_at, unlogged = found
        if now - logged_at < self.interval_s:
            self._keys[key] = (logged_at, unlogged + 1)
            return None
        self._keys[key] = (now, 0)
        return unlogged + 1
