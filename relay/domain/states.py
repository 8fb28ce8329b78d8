"""The states a delivery goes through and how it is made: plain enums, importable without
pydantic (the CLI's options use them and must start fast)."""

from __future__ import annotations

from enum import StrEnum


class DeliveryMode(StrEnum):
    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # will retry
    DEAD = "dead"  # gave up


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
