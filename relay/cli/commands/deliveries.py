"""``relay deliveries``: list deliveries and show one with its attempts."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from relay.cli.client import Relay, api_path, command
from relay.cli.columns import ATTEMPT_COLUMNS, DELIVERY_COLUMNS, DELIVERY_DETAILS
from relay.cli.commands.listing import show_list
from relay.cli.commands.options import (
    AllOpt,
    DeliveryId,
    LimitOpt,
    SinceOpt,
    SubscriptionOpt,
    UntilOpt,
    status_value,
    window,
)
from relay.cli.help import group
from relay.cli.render import details, emit, table
from relay.domain.states import DeliveryStatus

deliveries_app = group(help="Inspect deliveries and their attempts.")

StatusOpt = Annotated[DeliveryStatus | None, typer.Option(help="Only deliveries in this state.")]


@command(deliveries_app, "list")
def deliveries_list(
    relay: Relay,
    subscription: SubscriptionOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOpt = 50,
    everything: AllOpt = False,
) -> None:
    """Deliveries, newest first."""
    params: dict[str, Any] = {"subscription_id": subscription, "status": status_value(status)}
    params |= window(since, until) | {"limit": limit}
    named = {"subscriptions": subscription}
    show_list(relay, "/api/deliveries", params, everything, DELIVERY_COLUMNS, named)


@command(deliveries_app, "show")
def deliveries_show(relay: Relay, delivery_id: DeliveryId) -> None:
    """A delivery's status and every attempt made."""
    delivery = relay.call("GET", api_path("deliveries", delivery_id))
    attempts = table(delivery["attempt_log"], ATTEMPT_COLUMNS, "Attempts")
    emit(relay.as_json, delivery, details(delivery, DELIVERY_DETAILS), attempts)
