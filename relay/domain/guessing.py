"""Failed sign-ins, per client address (pure): slow to guess, and seen.

Each address has a bucket of ``burst`` failures that refills at ``per_s``; an address whose
bucket is empty is refused at once (429) without its token being looked at, so guessing
runs at the refill rate whatever the client sends. Other addresses are unaffected. Every
failure is counted, and :meth:`GuessLimiter.failed` says when to log: the first failure of
an address in each ``log_interval_s``, with how many were left unlogged before it, so a
flood is one line per address per interval.

    >>> g = GuessLimiter(burst=2, per_s=0.5, log_interval_s=60)
    >>> [g.blocked("10.0.0.1", 0) for _ in range(1)], g.failed("10.0.0.1", 0)
    ([0.0], 1)
    >>> g.failed("10.0.0.1", 0), g.failed("10.0.0.1", 0), g.blocked("10.0.0.1", 0.1)
    (None, None, 1.9)
    >>> g.blocked("10.0.0.2", 0.1)
    0.0
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Client:
    tokens: float
    at: float
    logged_at: float | None = None
    unlogged: int = 0


class GuessLimiter:
    """In-process, bounded: the ``max_clients`` most recently failing addresses are kept (a
    flood from many addresses forgets the oldest, it does not grow without end)."""

    def __init__(
        self, burst: int = 20, per_s: float = 0.2, log_interval_s: float = 60.0,
        max_clients: int = 10_000,
    ) -> None:  # fmt: skip
        self.burst = burst
        self.per_s = per_s
        self.log_interval_s = log_interval_s
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def _refilled(self, address: str, now: float) -> _Client | None:
        client = self._clients.get(address)
        if client is not None:
            client.tokens = min(self.burst, client.tokens + (now - client.at) * self.per_s)
            client.at = now
        return client

    def blocked(self, address: str, now: float) -> float:
        """Seconds this address must wait before its next try is looked at (0: go on)."""
        client = self._refilled(address, now)
        if client is None or client.tokens >= 1:
            return 0.0
        return round((1 - client.tokens) / self.per_s, 3)

    def failed(self, address: str, now: float) -> int | None:
        """Count a failure; the number of failures to log now (None: stay quiet)."""
        client = self._refilled(address, now)
        if client is None:
            client = self._clients[address] = _Client(tokens=float(self.burst), at=now)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        self._clients.move_to_end(address)
        client.tokens = max(0.0, client.tokens - 1)
        client.unlogged += 1
        if client.logged_at is not None and now - client.logged_at < self.log_interval_s:
            return None
        count, client.unlogged, client.logged_at = client.unlogged, 0, now
        return count
