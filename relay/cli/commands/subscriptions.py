"""``relay subscriptions``: create, inspect, pause, resume, test and delete subscriptions."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from relay.cli.client import (
    CliError,
    CommandFn,
    Relay,
    YesOpt,
    api_path,
    command,
    confirm,
    warn,
)
from relay.cli.columns import SUBSCRIPTION_COLUMNS, SUBSCRIPTION_DETAILS
from relay.cli.help import group
from relay.cli.render import details, emit, secret_line, table, timestamp
from relay.domain.states import DeliveryMode, DeliveryStatus

subscriptions_app = group(help="Manage subscriptions.")

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


EventTypeOpt = Annotated[
    list[str] | None, typer.Option("--event-type", help="Event type glob (repeatable).")
]
DescriptionOpt = Annotated[str | None, typer.Option(help="What it is for.")]
HeaderOpt = Annotated[
    list[str] | None, typer.Option("--header", help="Extra header 'Name: value' (repeatable).")
]
PublicHeaderOpt = Annotated[
    list[str] | None,
    typer.Option("--public-header", help="Show this header's value in answers (repeatable)."),
]
FilterOpt = Annotated[str | None, typer.Option("--filter", help="Content filter (JSON, or @file).")]
TransformOpt = Annotated[
    str | None, typer.Option("--transform", help="Transform (JSON, or @file).")
]
RetryOpt = Annotated[
    str | None,
    typer.Option(
        "--retry",
        metavar="POLICY",
        help="Retry schedule: a number of attempts (8), fields (max_attempts=8,max_age_s=3600,"
        "initial_s=5,exp_base=4,max_wait_s=21600,jitter_s=5) or JSON.",
    ),
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", metavar="SECONDS", help="Per attempt (0.1 to 60).")
]
RateLimitOpt = Annotated[
    float | None,
    typer.Option(
        "--rate-limit", metavar="PER_SECOND", help="At most this many deliveries a second."
    ),
]
MaxConcurrencyOpt = Annotated[
    int | None, typer.Option("--max-concurrency", metavar="N", help="Attempts in flight at once.")
]


def _retry(value: str) -> Any:
    """``8``, ``max_attempts=8,max_age_s=3600`` or a JSON object: the API's ``retry``."""
    text = value.strip()
    if text.startswith("{"):
        return _json_option(text, "--retry")
    if text.isdigit():
        return {"max_attempts": int(text)}
    retry: dict[str, float | int] = {}
    for item in text.split(","):
        name, sep, number = item.partition("=")
        try:
            parsed = float(number)
        except ValueError:
            parsed = None
        if not sep or not name.strip() or parsed is None:
            raise CliError(
                f"--retry takes a number of attempts, name=value pairs or JSON, got {value!r}", 2
            )
        retry[name.strip()] = int(parsed) if parsed.is_integer() else parsed
    return retry


# Each option of create/update and the API field it sets.
_FIELDS = {
    "url": "url",
    "source": "sources",
    "event_type": "event_types",
    "mode": "mode",
    "description": "description",
    "header": "headers",
    "public_header": "public_headers",
    "filter_": "filter",
    "transform": "transform",
    "retry": "retry",
    "timeout": "timeout_s",
    "rate_limit": "rate_limit",
    "max_concurrency": "max_concurrency",
}


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    """The request body from the options given (None: not given, left as it is)."""
    body: dict[str, Any] = {}
    for option, name in _FIELDS.items():
        value = options[option]
        if value is None:
            continue
        if name == "headers":
            value = _headers(value)
        elif name in ("filter", "transform"):
            value = _json_option(value, f"--{name}")
        elif name == "retry":
            value = _retry(value)
        elif isinstance(value, DeliveryMode):
            value = value.value
        body[name] = value
    return body


@command(subscriptions_app, "create", url_flags=("--relay-url",))
def subscriptions_create(
    relay: Relay,
    url: Annotated[str, typer.Option("--url", help="Where to deliver.")],
    source: Annotated[
        list[str], typer.Option("--source", help="Source name, or '*' (repeatable).")
    ],
    event_type: EventTypeOpt = None,
    mode: Annotated[DeliveryMode, typer.Option(help="Delivery mode.")] = DeliveryMode.RELIABLE,
    description: DescriptionOpt = None,
    header: HeaderOpt = None,
    public_header: PublicHeaderOpt = None,
    filter_: FilterOpt = None,
    transform: TransformOpt = None,
    retry: RetryOpt = None,
    timeout: TimeoutOpt = None,
    rate_limit: RateLimitOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
) -> None:
    """Create a subscription; its signing secret is printed once."""
    body = _fields(locals())
    sub = relay.call("POST", "/api/subscriptions", body=body)
    emit(relay.as_json, sub, details(sub, SUBSCRIPTION_DETAILS), secret_line(sub["secret"]))
    if not relay.as_json:
        warn(sub.get("warnings"))


@command(subscriptions_app, "update", url_flags=("--relay-url",))
def subscriptions_update(
    relay: Relay,
    subscription_id: SubscriptionId,
    url: Annotated[str | None, typer.Option("--url", help="Where to deliver.")] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Source name, or '*' (repeatable; replaces the list)."),
    ] = None,
    event_type: EventTypeOpt = None,
    mode: Annotated[DeliveryMode | None, typer.Option(help="Delivery mode.")] = None,
    description: DescriptionOpt = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="Extra header 'Name: value' (repeatable; replaces them)."),
    ] = None,
    public_header: PublicHeaderOpt = None,
    filter_: FilterOpt = None,
    transform: TransformOpt = None,
    retry: RetryOpt = None,
    timeout: TimeoutOpt = None,
    rate_limit: RateLimitOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
) -> None:
    """Change some of a subscription's fields; the others, its id and secret stay."""
    body = _fields(locals())
    if not body:
        raise CliError("nothing to change: give at least one option (see --help)", 2)
    sub = relay.call("PATCH", api_path("subscriptions", subscription_id), body=body)
    changed = ", ".join(sorted(body))
    emit(
        relay.as_json,
        sub,
        f"Updated subscription {subscription_id} ({changed}).",
        details(sub, SUBSCRIPTION_DETAILS),
    )
    if not relay.as_json:
        warn(sub.get("warnings"))


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
    """Send a test event to the subscription now and show what it answered; exits 1 unless
    the receiver took it."""
    result = relay.call("POST", api_path("subscriptions", subscription_id, "test"))
    code = result.get("status_code")
    outcome = f"{result['status']}" + (f" ({code})" if code is not None else "")
    error = f": {result['error']}" if result.get("error") else ""
    line = f"Test delivery {result['delivery_id']} (event {result['event_id']}): {outcome}"
    emit(relay.as_json, result, line + error)
    if result["status"] != DeliveryStatus.SUCCEEDED:
        # A script checking a receiver (`relay subscriptions test ... && deploy`) must see it.
        raise typer.Exit(1)


@command(subscriptions_app, "delete")
def subscriptions_delete(
    relay: Relay, subscription_id: SubscriptionId, yes: YesOpt = False
) -> None:
    """Delete a subscription (its deliveries stop; asks first unless --yes)."""
    confirm(f"Delete subscription {subscription_id}?", yes)
    relay.call("DELETE", api_path("subscriptions", subscription_id))
    emit(relay.as_json, {"deleted": subscription_id}, f"Deleted subscription {subscription_id}.")


def _json_option(value: str | None, flag: str) -> Any:
    """A JSON value given inline, or from a file as ``@path``."""
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
        return json.loads(text)
    except OSError as exc:
        raise CliError(f"{flag}: cannot read {value[1:]}: {exc.strerror or exc}", 2) from None
    except ValueError as exc:
        raise CliError(f"{flag} is not JSON: {exc}", 2) from None


def _preview_lines(result: dict[str, Any]) -> list[Text]:
    # Text, not markup: bodies and header values hold brackets ("[REDACTED]", JSON arrays).
    return [Text(line) for line in _preview_text(result)]


def _preview_text(result: dict[str, Any]) -> list[str]:
    if not result["matched"]:
        return [f"Not delivered: {result['failed']}"]
    if result.get("error"):
        return [f"Matched, but the delivery would die: {result['error']}"]
    version = result.get("transform_version")
    lines = ["Matched" + (f" (transform {version})" if version else "") + ". It would send:"]
    lines += [f"{name}: {value}" for name, value in (result.get("headers") or {}).items()]
    return [*lines, "", result.get("body") or ""]


@command(subscriptions_app, "preview")
def subscriptions_preview(
    relay: Relay,
    subscription_id: Annotated[
        str | None,
        typer.Argument(metavar="SUBSCRIPTION_ID", help="Omit to try --filter/--transform."),
    ] = None,
    event: Annotated[str | None, typer.Option("--event", help="A stored event's id.")] = None,
    body: Annotated[
        Path | None, typer.Option("--body", help="A sample body file ('-' for stdin).")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="Sample header 'Name: value'.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="The sample's source.")] = None,
    event_type: Annotated[str | None, typer.Option(help="The sample's event type.")] = None,
    filter_: Annotated[
        str | None, typer.Option("--filter", help="A filter (JSON, or @file) to try.")
    ] = None,
    transform: Annotated[
        str | None, typer.Option("--transform", help="A transform (JSON, or @file) to try.")
    ] = None,
) -> None:
    """Would a subscription (or a filter and transform not saved yet) deliver an event, and
    what would it send? Nothing is stored or sent."""
    if (event is None) == (body is None):
        raise CliError("give one of --event or --body", 2)
    spec: dict[str, Any] = {"event_id": event} if event else {}
    if body is not None:
        try:
            raw = sys.stdin.read() if str(body) == "-" else body.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {body}: {exc.strerror or exc}", 2) from None
        spec |= {"raw_body": raw, "headers": _headers(header or [])}
        spec |= {k: v for k, v in (("source", source), ("event_type", event_type)) if v}
    if subscription_id is not None:
        if filter_ or transform:
            raise CliError("--filter and --transform try unsaved ones: omit SUBSCRIPTION_ID", 2)
        path = api_path("subscriptions", subscription_id, "preview")
    else:
        path = "/api/preview"
        spec |= {"filter": _json_option(filter_, "--filter")}
        spec |= {"transform": _json_option(transform, "--transform")}
    result = relay.call("POST", path, body=spec)
    emit(relay.as_json, result, *_preview_lines(result))
