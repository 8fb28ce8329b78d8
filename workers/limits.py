"""Per-subscription caps on attempts in flight, so one slow subscriber cannot take every slot."""

from __future__ import annotations

import asyncio


class SubscriptionLimits:
    def __init__(self, per_subscription: int) -> None:
        self._size = per_subscription
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def get(self, subscription_id: str) -> asyncio.Semaphore:
        sem = self._semaphores.get(subscription_id)
        if sem is None:
            self._prune()
            sem = self._semaphores[subscription_id] = asyncio.Semaphore(self._size)
        return sem

    def _prune(self) -> None:
        # Idle semaphores hold no state worth keeping; drop them so the map stays small.
        if len(self._semaphores) > 1000:
            idle = [k for k, s in self._semaphores.items() if not s.locked() and not s._waiters]
            for key in idle:
                del self._semaphores[key]
