"""What the admin API answers: the domain's records with their times as RFC 3339 strings.

The domain and storage count time in epoch milliseconds (indexes sort by it, Lua scripts
compare it); at this boundary a time becomes ``"2026-11-24T18:10:03.123Z"``, as Svix and
Stripe write it and as the ``since``/``until`` filters take it. Field names do not change.

Routes keep returning domain objects (the dashboard calls them as functions) and name the
view as their ``response_model``: FastAPI validates the object into the view and writes it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from relay.api.listing import Listing
from relay.domain.clock import rfc3339
from relay.domain.models import (
    NOT_DELIVERED,
    Attempt,
    Delivery,
    Event,
    EventDetail,
    NotDelivered,
    SecretRotated,
    Skipped,
    Source,
    SubscriptionOut,
    SubscriptionSaved,
    UnusableSubscription,
)

Timestamp = Annotated[
    int,
    PlainSerializer(rfc3339, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2026-11-24T18:10:03.123Z"]},
        mode="serialization",
    ),
]
# A view is read from the domain object's attributes (a Delivery where a DeliveryView goes).
_FROM_DOMAIN = ConfigDict(from_attributes=True)


class EventView(Event):
    model_config = _FROM_DOMAIN
    received_at: Timestamp


class DeliveryView(Delivery):
    model_config = _FROM_DOMAIN
    created_at: Timestamp
    updated_at: Timestamp
    next_attempt_at: Timestamp | None


class AttemptView(Attempt):
    model_config = _FROM_DOMAIN
    started_at: Timestamp
    next_attempt_at: Timestamp | None


class DeliveryDetailView(DeliveryView):
    attempt_log: list[AttemptView]


class EventDetailView(EventView):
    deliveries: list[DeliveryView]
    skipped: list[Skipped] = Field(
        default_factory=list, description=EventDetail.model_fields["skipped"].description
    )
    not_delivered: list[NotDelivered] = Field(default_factory=list, description=NOT_DELIVERED)


class DeadLettersView(Listing[DeliveryView]):
    model_config = _FROM_DOMAIN
    total: int


class SubscriptionView(SubscriptionOut):
    model_config = _FROM_DOMAIN
    created_at: Timestamp = Field(description="When it was made.")
    updated_at: Timestamp = Field(description="When it last changed.")
    previous_secret_expires_at: Timestamp | None = Field(
        default=None, description="Until then deliveries are signed with the old secret too."
    )


class UnusableSubscriptionView(UnusableSubscription):
    model_config = _FROM_DOMAIN
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


# A stored subscription this version cannot use is shown too, with its ``problem``.
ShownSubscription = SubscriptionView | UnusableSubscriptionView


class LaneStateView(BaseModel):
    """The subscription's lane now: its deliveries waiting, and whether it holds back."""

    held_until: Timestamp | None = Field(
        description="Until then the lane hands out nothing (null: not held)."
    )
    hold_reason: str | None = Field(description="Why it holds (null: not held).")
    breaker: str = Field(description="The circuit breaker: closed, open or half_open.")
    backlog: int = Field(description="Deliveries waiting, FIFO ones behind their head included.")
    in_flight: int = Field(description="Attempts being made now.")
    recent_failure_rate: float | None = Field(
        description="Share of the attempts in the breaker's window (30 s) that failed "
        "(null: none made)."
    )


class SubscriptionDetailView(SubscriptionView):
    lane: LaneStateView


ShownSubscriptionDetail = SubscriptionDetailView | UnusableSubscriptionView


class SubscriptionList(BaseModel):
    data: list[ShownSubscription]


class SubscriptionSavedView(SubscriptionView):
    warnings: list[str] = Field(
        default_factory=list, description=SubscriptionSaved.model_fields["warnings"].description
    )


class SubscriptionCreatedView(SubscriptionSavedView):
    secret: str


class SecretRotatedView(SecretRotated):
    model_config = _FROM_DOMAIN
    previous_secret_expires_at: Timestamp


def public_source(source: Source) -> dict[str, Any]:
    """:meth:`Source.public` (secrets left out), its times written as RFC 3339."""
    data = source.public()
    data["created_at"], data["updated_at"] = rfc3339(source.created_at), rfc3339(source.updated_at)
    return data
