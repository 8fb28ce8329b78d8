"""Why an event got no delivery for a subscription: worked out from plain values."""

from __future__ import annotations

from typing import Any

from relay.domain.explain import explain
from relay.domain.models import Event, Subscription, UnusableSubscription

RECEIVED = 1_000


def event(source: str = "github", event_type: str | None = "push", **kw: Any) -> Event:
    fields: dict[str, Any] = {"id": "evt_1", "source": source, "event_type": event_type,
                              "received_at": RECEIVED, "content_type": "application/json",
                              "headers": {}, "idempotency_key": None, "body_bytes": 2,
                              "fanned_out": True}  # fmt: skip
    return Event(**(fields | kw))


def sub(sub_id: str, **kw: Any) -> Subscription:
    fields: dict[str, Any] = {"id": sub_id, "secret": "whsec_x", "created_at": 1,
                              "updated_at": 1, "url": "http://x.test/",
                              "sources": ["github"]}  # fmt: skip
    return Subscription(**(fields | kw))


def reasons(*args: Any, **kw: Any) -> dict[str, str]:
    return {n.subscription_id: n.reason.value for n in explain(*args, **kw)}


def test_each_reason_from_the_current_subscriptions() -> None:
    current = [
        sub("typed", event_types=["pull_request.*"]),
        sub("off", enabled=False, disabled_reason="410 Gone from the receiver"),
        sub("new", created_at=RECEIVED + 1),
        sub("edited", updated_at=RECEIVED + 1),
        sub("fine"),  # would have matched, never changed: nothing to explain
    ]
    assert reasons(event(), [], {}, current) == {
        "typed": "event_type", "off": "disabled", "new": "created_after", "edited": "changed_after",
    }  # fmt: skip


def test_a_filter_is_as_recorded_and_a_type_mismatch_comes_before_disabled() -> None:
    current = [sub("both", enabled=False, event_types=["issues"]), sub("filtered")]
    [first, second] = explain(event(), [], {"filtered": "body action eq 'closed'"}, current)
    assert (first.subscription_id, first.reason, first.decided) == (
        "filtered",
        "filter",
        "at_fan_out",
    )
    assert (second.subscription_id, second.reason, second.decided) == ("both", "event_type", "now")
    assert second.detail == "event type 'push' matches none of: issues"


def test_every_source_subscriptions_do_not_explain_the_relays_own_events() -> None:
    current = [sub("all", sources=["*"], event_types=["issues"])]
    assert reasons(event(source="_relay.ops", event_type="delivery.dead"), [], {}, current) == {}
    assert reasons(event(), [], {}, current) == {"all": "event_type"}


def test_an_event_waiting_for_fan_out_says_so_and_an_unusable_record_is_named() -> None:
    broken = UnusableSubscription(id="bad", problem="config is not JSON", sources=["github"],
                                  enabled=True, paused=False)  # fmt: skip
    assert reasons(event(fanned_out=False), [], {}, [sub("a")]) == {"a": "not_fanned_out"}
    assert reasons(event(), [], {}, [broken]) == {"bad": "unusable"}
