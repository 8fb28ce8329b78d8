"""Arguments and options more than one command group takes, and the checks on them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from relay.cli.client import CliError
from relay.domain.states import DeliveryStatus

EventId = Annotated[str, typer.Argument(metavar="EVENT_ID", show_default=False)]
DeliveryId = Annotated[str, typer.Argument(metavar="DELIVERY_ID", show_default=False)]

SinceOpt = Annotated[
    str | None, typer.Option(help="From this time (RFC 3339: 2026-11-24T18:10:03Z).")
]
UntilOpt = Annotated[
    str | None, typer.Option(help="Up to this time (RFC 3339: 2026-11-24T18:10:03Z).")
]
LimitOpt = Annotated[int, typer.Option(min=1, max=500, help="Rows per page.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Follow every page, not just the first.")]
SubscriptionOpt = Annotated[str | None, typer.Option("--subscription", help="Subscription id.")]


def window(since: str | None, until: str | None) -> dict[str, str | None]:
    """``since``/``until`` checked here, so a typo is a usage error and not a 422."""
    for flag, value in (("--since", since), ("--until", until)):
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise CliError(
                    f"{flag} must be an RFC 3339 time such as 2026-11-24T18:10:03Z, got {value!r}",
                    2,
                ) from None
    return {"since": since, "until": until}


def status_value(status: DeliveryStatus | None) -> str | None:
    return status.value if status else None
