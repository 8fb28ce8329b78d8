"""Per-subscription caps on attempts in flight, so one slow subscriber cannot take every slot.

A job for a subscription at its cap waits a moment for a free place (a fast subscriber's
attempts finish in milliseconds); a subscriber that is slow, and already has as many jobs
waiting as it may have in flight, gets its jobs deferred instead, so it holds at most twice
its cap of the worker's slots.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class _Slot:
    sem: asyncio.Semaphore
    waiting: int = 0
    users: int = 0


class SubscriptionLimits:
    def __init__(self, per_subscription: int, wait_s: float = 1.0) -> None:
        self._size = per_subscription
        self._wait_s = wait_s
        self._slots: dict[str, _Slot] = {}

    async def acquire(self, subscription_id: str) -> bool:
        """Take a place for one attempt; False when the caller should come back later."""
        slot = self._slots.get(subscription_id)
        if slot is None:
            self._prune()
            slot = self._slots[subscription_id] = _Slot(asyncio.Semaphore(self._size))
        if slot.sem.locked() and slot.waiting >= self._size:
            return False
        slot.waiting += 1
        try:
            async with asyncio.timeout(self._wait_s):
                await slot.sem.acquire()
        except TimeoutError:
            return False
        finally:
            slot.waiting -= 1
        slot.users += 1
        return True

    def release(self, subscription_id: str) -> None:
        slot = self._slots[subscription_id]
        slot.users -= 1
        slot.sem.release()

    def _prune(self) -> None:
        # Idle slots hold no state worth keeping; drop them so the map stays small.
        if len(self._slots) > 1000:
            idle = [k for k, s in self._slots.items() if s.users == 0 and s.waiting == 0]
            for key in idle:
                del self._slots[key]
