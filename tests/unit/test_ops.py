"""Operational events' pure rules: who gets them, what may emit them, the recovery mark."""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.domain import ops
from relay.domain.matching import wants


@dataclass
class Sub:
    sources: list[str]
    event_types: list[str] = field(default_factory=lambda: ["*"])
    enabled: bool = True


def test_only_a_subscription_that_names_the_ops_source_gets_its_events() -> None:
    assert wants(Sub(["_relay.ops"]), ops.OPS_SOURCE, ops.DELIVERY_DEAD)
    assert not wants(Sub(["*"]), ops.OPS_SOURCE, ops.DELIVERY_DEAD)
    assert wants(Sub(["*"]), "github", "push")
    assert not wants(Sub(["_relay.ops"], ["subscription.*"]), ops.OPS_SOURCE, "delivery.dead")


def test_deliveries_of_operational_events_emit_none() -> None:
    assert not ops.emits_ops(ops.OPS_SOURCE)
    assert not ops.emits_ops("_relay")  # a subscription test
    assert ops.emits_ops("github")


def test_a_threshold_recovers_at_half() -> None:
    assert ops.recovery_mark(1000) == 500
    assert ops.recovery_mark(1) == 0
