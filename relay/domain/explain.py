"""Why an event reached no delivery for a subscription (pure).

Fan-out keeps only what a filter decided (the condition that failed, per subscription:
``evt:{id}:skipped``); every other reason is worked out when asked, against the
subscriptions as they are now, and each answer says which it is (``decided``). Recording
the reason for every non-matching subscription at fan-out would cost a hash field per
subscription per event; this costs nothing until someone asks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from relay.domain.matching import event_type_matches, listens_to
from relay.domain.models import (
    Decided,
    Delivery,
    DeliveryStatus,
    Event,
    NotDelivered,
    Reason,
    Subscription,
    UnusableSubscription,
)


def explain(
    event: Event,
    deliveries: Sequence[Delivery],
    skipped: Mapping[str, str],
    current: Sequence[Subscription | UnusableSubscription],
    deleted: Collection[str] = (),
) -> list[NotDelivered]:
    """One entry per subscription of the event's source (``current``: those listening to
    it now, as stored) that got no delivery of it, and per subscription of ``deleted``
    (its deliveries' subscriptions that no longer exist) whose delivery had not succeeded."""
    delivered = {d.subscription_id for d in deliveries}
    out: list[NotDelivered] = []
    for sub_id, failed in skipped.items():
        out.append(NotDelivered(subscription_id=sub_id, reason=Reason.FILTER,
                                detail=f"its filter did not match: {failed}",
                                decided=Decided.AT_FAN_OUT))  # fmt: skip
    known = set(skipped) | delivered
    for sub in current:
        if sub.id in known:
            continue
        found = _why_not(event, sub)
        if found is not None:
            reason, detail = found
            out.append(NotDelivered(subscription_id=sub.id, reason=reason, detail=detail,
                                    decided=Decided.NOW))  # fmt: skip
    gone = sorted(
        {d.subscription_id for d in deliveries if d.status is not DeliveryStatus.SUCCEEDED}
        & set(deleted)
    )
    for sub_id in gone:
        out.append(NotDelivered(subscription_id=sub_id, reason=Reason.DELETED,
                                detail="the subscription was deleted before its delivery "
                                "succeeded; what was left was closed without a request",
                                decided=Decided.NOW))  # fmt: skip
    return out


def _why_not(event: Event, sub: Subscription | UnusableSubscription) -> tuple[Reason, str] | None:
    if sub.sources and not listens_to(sub.sources, event.source):
        return None  # "*", and the event is the relay's own
    if not event.fanned_out:
        return Reason.NOT_FANNED_OUT, "the event waits for fan-out; deliveries come then"
    if isinstance(sub, UnusableSubscription):
        return Reason.UNUSABLE, f"its stored record cannot be used: {sub.problem}"
    if sub.created_at > event.received_at:
        return Reason.CREATED_AFTER, "the subscription was made after the event arrived"
    # The event type before the switch: enabling it again would not deliver this event.
    if not event_type_matches(sub.event_types, event.event_type):
        shown = repr(event.event_type) if event.event_type is not None else "no type"
        patterns = ", ".join(sub.event_types)
        return Reason.EVENT_TYPE, f"event type {shown} matches none of: {patterns}"
    if not sub.enabled:
        why = sub.disabled_reason or "disabled by an operator"
        return Reason.DISABLED, f"the subscription is disabled ({why})"
    if sub.updated_at > event.received_at:
        return Reason.CHANGED_AFTER, (
            "it would take the event now, but was changed after the event arrived"
        )
    return None
