"""Operational events (pure): what the relay tells operators about itself, as Svix's
"operational webhooks" do.

They are events of the internal source ``_relay.ops`` (no real source can be named so:
names start with a letter or digit), delivered like any other event to the subscriptions
that list that source, signed with their secrets, retried, dead-lettered. A ``"*"``
subscription does not get them: an operator asks for them by name.

Loops are impossible by construction: the delivery of an operational event never emits
one (its death, or a 410 it gets, is logged only), and the threshold pass skips
subscriptions that listen to ``_relay.ops``.
"""

from __future__ import annotations

OPS_SOURCE = "_relay.ops"
# The relay's own events: operational ones and `subscriptions test`'s (models.TEST_SOURCE,
# spelled here so this module needs no pydantic). Lists leave them out unless asked.
INTERNAL_SOURCES = frozenset({OPS_SOURCE, "_relay"})

SUBSCRIPTION_DISABLED = "subscription.disabled"
DELIVERY_DEAD = "delivery.dead"
BACKLOG_EXCEEDED = "subscription.backlog_exceeded"
BACKLOG_RECOVERED = "subscription.backlog_recovered"
DEAD_LETTERS_EXCEEDED = "subscription.dead_letters_exceeded"
DEAD_LETTERS_RECOVERED = "subscription.dead_letters_recovered"
# Redis's maxmemory-policy is not noeviction (relay.domain.eviction), and back to it.
EVICTION_POLICY_UNSAFE = "redis.eviction_policy_unsafe"
EVICTION_POLICY_RESTORED = "redis.eviction_policy_restored"


def is_internal(source: str) -> bool:
    """The relay's own sources (tests, operational events), never matched by ``"*"``."""
    return source.startswith("_")


def emits_ops(event_source: str) -> bool:
    """Whether what happens to a delivery of this event may emit operational events: not
    for the relay's own events (an operational one, or a subscription test's answer)."""
    return not is_internal(event_source)


def recovery_mark(threshold: int) -> int:
    """At or below this a crossed threshold counts as recovered: half of it, so a count
    that hovers around the threshold fires once, not on every pass."""
    return threshold // 2
