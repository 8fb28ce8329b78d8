"""``relay events``: list, show and fetch the raw body of received events."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from relay.cli.client import Relay, api_path, command
from relay.cli.columns import (
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    EVENT_DETAILS,
    NOT_DELIVERED_COLUMNS,
)
from relay.cli.commands.listing import show_list
from relay.cli.commands.options import (
    AllOpt,
    EventId,
    LimitOpt,
    SinceOpt,
    UntilOpt,
    status_value,
    window,
)
from relay.cli.help import group
from relay.cli.render import details, emit, table
from relay.domain.states import DeliveryStatus

events_app = group(help="Inspect received events.")


@command(events_app, "list")
def events_list(
    relay: Relay,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    event_type: Annotated[str | None, typer.Option(help="Only this event type.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    status: Annotated[
        DeliveryStatus | None, typer.Option(help="Only events with a delivery in this state.")
    ] = None,
    limit: LimitOpt = 50,
    everything: AllOpt = False,
    include_internal: Annotated[
        bool,
        typer.Option(
            "--include-internal",
            help="Also the relay's own events (subscription tests, operational events).",
        ),
    ] = False,
) -> None:
    """Events, newest first. The relay's own events (source _relay: subscription tests;
    _relay.ops: operational events) are left out unless --include-internal or --source
    names one."""
    params: dict[str, Any] = {"source": source, "event_type": event_type, "limit": limit}
    params["include_internal"] = "true" if include_internal else None
    params |= {"status": status_value(status)} | window(since, until)
    show_list(relay, "/api/events", params, everything, EVENT_COLUMNS, {"sources": source})


@command(events_app, "show")
def events_show(relay: Relay, event_id: EventId) -> None:
    """An event's metadata, its deliveries, and why the subscriptions of its source that got
    none did not."""
    event = relay.call("GET", api_path("events", event_id))
    deliveries = table(event["deliveries"], DELIVERY_COLUMNS, "Deliveries")
    # A relay older than this CLI answers without it.
    missed = event.get("not_delivered") or []
    not_delivered = table(missed, NOT_DELIVERED_COLUMNS, "Not delivered") if missed else ""
    emit(relay.as_json, event, details(event, EVENT_DETAILS), deliveries, not_delivered)


@command(events_app, "body")
def events_body(relay: Relay, event_id: EventId) -> None:
    """Write an event's raw body to stdout, byte for byte."""
    response = relay.request("GET", api_path("events", event_id, "body"))
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()
