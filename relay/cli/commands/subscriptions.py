"""``relay subscriptions``: create, inspect, pause, resume, test and delete subscriptions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from relay.cli.client import CliError, CommandFn, Relay, api_path, command
from relay.cli.columns import SUBSCRIPTION_COLUMNS, SUBSCRIPTION_DETAILS
from relay.cli.render import details, emit, secret_line, table, timestamp
from relay.domain.models import DeliveryMode

subscriptions_app = typer.Typer(help="Manage subscriptions.", no_args_is_help=True)

SubscriptionId = Annotated[str, typer.Argument(metavar="SUBSCRIPTION_ID", show_default=False)]


def _headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header must look like 'Name: value', got {name.strip()!r}", 2)
        headers[name.strip()] = content.strip()
    return headers


@command(subscriptions_app, "list")
def subscriptions_list(relay: Relay) -> None:
    """Every subscription."""
    subs = relay.call("GET", "/api/subscriptions")
    emit(relay.as_json, subs, table(subs["data"], SUBSCRIPTION_COLUMNS))


@command(subscriptions_app, "show")
def subscriptions_show(relay: Relay, subscription_id: SubscriptionId) -> None:
    """One subscription."""
    sub = relay.call("GET", api_path("subscriptions", subscription_id))
    emit(relay.as_json, sub, details(sub, SUBSCRIPTION_DETAILS))


@command(subscriptions_app, "create", url_flags=("--relay-url",))
def subscriptions_create(
    relay: Relay,
    url: Annotated[str, typer.Option("--url", help="Where to deliver.")],
    source: Annotated[list[str], typer.Option("--source", help="Source name, or '*'.")],
    event_type: Annotated[
        list[str] | None, typer.Option("--event-type", help="Event type glob (repeatable).")
    ] = None,
    mode: Annotated[DeliveryMode, typer.Option(help="Delivery mode.")] = DeliveryMode.RELIABLE,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    header: Annotated[
        list[str] | None, typer.Option("--header", help="Extra header 'Name: value'.")
    ] = None,
    public_header: Annotated[
        list[str] | None,
        typer.Option("--public-header", help="Show this header's value in answers (repeatable)."),
    ] = None,
) -> None:
    """Create a subscription; its signing secret is printed once."""
    body: dict[str, Any] = {"url": url, "sources": source, "mode": mode.value}
    body |= {"description": description, "headers": _headers(header or [])}
    body["public_headers"] = public_header or []
    if event_type:
        body["event_types"] = event_type
    sub = relay.call("POST", "/api/subscriptions", body=body)
    emit(relay.as_json, sub, details(sub, SUBSCRIPTION_DETAILS), secret_line(sub["secret"]))


def _subscription_action(action: str, done: str, doc: str) -> CommandFn:
    def act(relay: Relay, subscription_id: SubscriptionId) -> None:
        sub = relay.call("POST", api_path("subscriptions", subscription_id, action))
        emit(relay.as_json, sub, f"Subscription {subscription_id} {done}.")

    act.__doc__ = doc
    return act


command(subscriptions_app, "pause")(
    _subscription_action("pause", "paused", "Stop delivering; deliveries wait until resumed.")
)
command(subscriptions_app, "resume")(
    _subscription_action("resume", "resumed", "Deliver again, the waiting deliveries first.")
)


@command(subscriptions_app, "rotate-secret")
def subscriptions_rotate_secret(relay: Relay, subscription_id: SubscriptionId) -> None:
    """Issue a new signing secret (printed once); the old one signs too for a while."""
    rotated = relay.call("POST", api_path("subscriptions", subscription_id, "rotate-secret"))
    until = (
        f"The previous secret also signs until {timestamp(rotated['previous_secret_expires_at'])}."
    )
    emit(relay.as_json, rotated, secret_line(rotated["secret"]), until)


@command(subscriptions_app, "test")
def subscriptions_test(relay: Relay, subscription_id: SubscriptionId) -> None:
    """Send a test event to the subscription now and show what it answered."""
    result = relay.call("POST", api_path("subscriptions", subscription_id, "test"))
    code = result.get("status_code")
    outcome = f"{result['status']}" + (f" ({code})" if code is not None else "")
    error = f": {result['error']}" if result.get("error") else ""
    line = f"Test delivery {result['delivery_id']} (event {result['event_id']}): {outcome}"
    emit(relay.as_json, result, line + error)


@command(subscriptions_app, "delete")
def subscriptions_delete(relay: Relay, subscription_id: SubscriptionId) -> None:
    """Delete a subscription."""
    relay.call("DELETE", api_path("subscriptions", subscription_id))
    emit(relay.as_json, {"deleted": subscription_id}, f"Deleted subscription {subscription_id}.")
