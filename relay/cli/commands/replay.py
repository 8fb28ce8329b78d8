"""``relay replay``: send an event, a delivery or the dead letters again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from relay.cli.client import Relay, YesOpt, api_path, command, confirm
from relay.cli.columns import DELIVERY_COLUMNS
from relay.cli.commands.options import (
    DeliveryId,
    EventId,
    SinceOpt,
    SubscriptionOpt,
    UntilOpt,
    window,
)
from relay.cli.help import group
from relay.cli.render import console, emit, plural, table

replay_app = group(help="Send events and deliveries again.")


@command(replay_app, "event")
def replay_event(
    relay: Relay,
    event_id: EventId,
    subscription: Annotated[
        list[str] | None,
        typer.Option("--subscription", help="Only to this subscription (repeatable)."),
    ] = None,
) -> None:
    """Deliver an event again: to every matching subscription, or to those named."""
    body = {"subscription_ids": subscription} if subscription else {}
    replay = relay.call("POST", api_path("events", event_id, "replay"), body=body)
    deliveries = replay["deliveries"]
    done = f"Replayed {event_id}: {plural(len(deliveries), 'delivery')} queued."
    emit(relay.as_json, replay, table(deliveries, DELIVERY_COLUMNS), done)


@command(replay_app, "delivery")
def replay_delivery(relay: Relay, delivery_id: DeliveryId) -> None:
    """Attempt one delivery again now (any status but delivering)."""
    delivery = relay.call("POST", api_path("deliveries", delivery_id, "retry"))
    emit(relay.as_json, delivery, f"Delivery {delivery_id} requeued (status {delivery['status']}).")


@command(replay_app, "dead-letters")
def replay_dead_letters(
    relay: Relay,
    subscription: SubscriptionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Deliveries per request.")] = 100,
    yes: YesOpt = False,
) -> None:
    """Requeue dead deliveries (all, or one subscription's, or a time window's). Every
    dead delivery at once asks first unless --yes."""
    filters = {"subscription_id": subscription} | window(since, until)
    filters = {k: v for k, v in filters.items() if v is not None}
    total = relay.call("GET", "/api/dead-letters", params={**filters, "limit": 1})["total"]
    if not filters and total:
        # Every dead delivery at once can flood receivers that failed for a reason.
        confirm(f"Requeue all {plural(total, 'dead delivery')} (no --subscription or window)?", yes)
    requeued, remaining, after = 0, total, None
    # Walk the dead letters in id order, each call starting after the last one seen: one that
    # dies again at once (a 4xx) goes back into the index behind us, not in front.
    # Counts, not a percentage and a time estimate (which read "0% -:--:--" before the first
    # answer); no bar at all when there is nothing to requeue.
    bar = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    quiet = relay.as_json or total == 0
    with Progress(*bar, console=console(stderr=True), disable=quiet) as progress:
        task = progress.add_task("Requeueing dead letters", total=total)
        while requeued < total:
            body = filters | {"limit": min(batch, total - requeued), "after": after}
            answer = relay.call("POST", "/api/dead-letters/replay", body=body)
            requeued, remaining = requeued + answer["requeued"], answer["remaining"]
            progress.update(task, completed=requeued)
            if answer["last"] is None:
                break
            after = answer["last"]
    left = f" {remaining} still dead (new, or dead again): run it again." if remaining else ""
    result = {"requeued": requeued, "remaining": remaining}
    emit(relay.as_json, result, f"Requeued {plural(requeued, 'dead delivery')}.{left}")
