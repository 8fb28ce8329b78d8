"""``relay events|deliveries|replay|subscriptions|sources|apply``: operate a running relay.

These commands talk only to the relay's HTTP API. Every one of them takes ``--url``
(``RELAY_URL``, default ``http://127.0.0.1:8000``), ``--token`` (``RELAY_ADMIN_TOKEN``) and
``--json`` (print the API's JSON instead of tables, for scripts). ``--url`` is also spelled
``--relay-url``, the only spelling on ``subscriptions create``, whose ``--url`` is the
subscriber's.

Exit codes: 0 done; 1 the relay answered an error or could not be reached; 2 bad usage or
input (a malformed option, an apply file that does not validate). A failure prints one line
to stderr, ``error: 404 no delivery 'dlv_x'``. The admin token is never printed.

``admin_app`` holds them all; ``relay.cli`` merges it with ``app.add_typer(admin_app)``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console, RenderableType
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from relay.cli import apply as apply_file
from relay.domain.models import DeliveryMode, DeliveryStatus

DEFAULT_URL = "http://127.0.0.1:8000"
EXCERPT_CHARS = 60


class CliError(Exception):
    """A failure to report on one line; ``code`` 1 for the relay's side, 2 for usage."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# --- talking to the relay ------------------------------------------------------------------


@dataclass
class Relay:
    """The relay's API, as one command sees it."""

    url: str
    client: httpx.Client
    as_json: bool

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        """Send one request; any transport error or error status becomes a :class:`CliError`."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.client.request(method, path, params=query, json=body)
        except httpx.UnsupportedProtocol:
            raise CliError(f"not an http(s) URL: {self.url}", 2) from None
        except httpx.TimeoutException:
            raise CliError(f"relay at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach relay at {self.url}: {_reason(exc)}") from None
        if response.is_error:
            raise CliError(_problem(response))
        return response

    def call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        """:meth:`request`, returning the decoded JSON body (None when there is none)."""
        response = self.request(method, path, params=params, body=body)
        return response.json() if response.content else None


def _reason(exc: Exception) -> str:
    """``[Errno 111] Connection refused`` -> ``connection refused``."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)) or type(exc).__name__
    return text[0].lower() + text[1:]


def _problem(response: httpx.Response) -> str:
    """``404 no delivery 'dlv_x'`` from an RFC 9457 problem body (or the status phrase)."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return f"{response.status_code} {response.reason_phrase}".strip()
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    errors = problem.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        loc = ".".join(str(p) for p in errors[0].get("loc", []))
        detail += f": {loc}: {errors[0].get('msg', '')}"
    return f"{response.status_code} {detail}"


def _path(*parts: str) -> str:
    """``/api/...`` with each id quoted, so an id cannot reach another route."""
    return "/api/" + "/".join(quote(p, safe="") for p in parts)


# --- shared options and the command decorator ----------------------------------------------

TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="RELAY_ADMIN_TOKEN", help="Admin token.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]
_SHARED = ("relay_url", "token", "as_json")


def _shared_options(url_flags: Sequence[str]) -> list[inspect.Parameter]:
    url_opt = typer.Option(*url_flags, envvar="RELAY_URL", help="The relay's base URL.")
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter(
            "relay_url", keyword, default=DEFAULT_URL, annotation=Annotated[str, url_opt]
        ),
        inspect.Parameter("token", keyword, default=None, annotation=TokenOpt),
        inspect.Parameter("as_json", keyword, default=False, annotation=JsonOpt),
    ]


CommandFn = Callable[..., None]


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.code) from None
    except apply_file.ApplyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _shown(url: str) -> str:
    """The URL as errors show it: without a user or password."""
    return re.sub(r"//[^/@]*@", "//", url.rstrip("/"))


def _connect(url: str, token: str | None) -> httpx.Client:
    if not token:
        raise CliError("no admin token: set RELAY_ADMIN_TOKEN or pass --token", 2)
    if not (token.isascii() and token.isprintable()):
        # Checked here: an HTTP library's complaint about a header would quote it.
        raise CliError("the admin token has characters a header cannot carry", 2)
    try:
        return httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30)
    except httpx.InvalidURL:
        raise CliError(f"not a valid URL: {_shown(url)}", 2) from None


def _command(
    group: typer.Typer, name: str, url_flags: Sequence[str] = ("--url", "--relay-url")
) -> Callable[[CommandFn], CommandFn]:
    """Register ``fn(relay, ...)`` as ``name``: the command gets the shared options, a
    connected :class:`Relay` as its first argument, and one-line errors. A command with a
    ``--url`` of its own passes ``url_flags=("--relay-url",)``."""

    def register(fn: CommandFn) -> CommandFn:
        signature = inspect.signature(fn, eval_str=True)
        own = list(signature.parameters.values())[1:]

        def run(**kwargs: Any) -> None:
            url, token, as_json = (kwargs.pop(key) for key in _SHARED)
            with _one_line_errors(), _connect(url, token) as client:
                fn(Relay(_shown(url), client, as_json), **kwargs)

        shared = _shared_options(url_flags)
        run.__signature__ = signature.replace(parameters=[*own, *shared])  # type: ignore[attr-defined]
        run.__doc__ = fn.__doc__
        group.command(name)(run)
        return fn

    return register


# --- output ----------------------------------------------------------------------------------

Column = tuple[str, Callable[[Mapping[str, Any]], object]]


def _console(stderr: bool = False) -> Console:
    # Not a terminal (a pipe, a test): wide enough that ids and URLs are never cut.
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 240)


def _emit(relay: Relay, data: Any, *people: RenderableType | str) -> None:
    """The API's JSON with ``--json``, else what people read."""
    if relay.as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    console = _console()
    for item in people:
        if item != "":
            console.print(item, highlight=False)


def _ts(ms: object) -> str:
    if not isinstance(ms, int | float):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cell(value: object) -> Text:
    """Plain text (never rich markup: errors and bodies contain brackets)."""
    if value is None or value == "":
        return Text("-")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, list):
        return Text(", ".join(map(str, value)))
    if isinstance(value, dict):
        return Text(json.dumps(value, separators=(",", ":")))
    return Text(str(value))


def _key(name: str) -> Callable[[Mapping[str, Any]], object]:
    return lambda row: row.get(name)


def _time(name: str) -> Callable[[Mapping[str, Any]], object]:
    return lambda row: _ts(row.get(name))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], title: str = "") -> Table:
    table = Table(title=title or None, title_justify="left")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(get(row)) for _, get in columns))
    return table


def _details(obj: Mapping[str, Any], columns: Sequence[Column]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for header, get in columns:
        table.add_row(header, _cell(get(obj)))
    return table


def _excerpt(text: object) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def _error(row: Mapping[str, Any]) -> object:
    error, message = row.get("error"), row.get("error_message")
    return f"{error}: {message}" if error and message else error or message


def _state(sub: Mapping[str, Any]) -> str:
    if not sub.get("enabled", True):
        reason = sub.get("disabled_reason")
        return f"disabled ({reason})" if reason else "disabled"
    return "paused" if sub.get("paused") else "active"


EVENT_COLUMNS: list[Column] = [
    ("ID", _key("id")),
    ("Received", _time("received_at")),
    ("Source", _key("source")),
    ("Type", _key("event_type")),
    ("Bytes", _key("body_bytes")),
]
EVENT_DETAILS: list[Column] = [
    *EVENT_COLUMNS,
    ("Content type", _key("content_type")),
    ("Idempotency key", _key("idempotency_key")),
    ("Fanned out", _key("fanned_out")),
    ("Headers", _key("headers")),
]
DELIVERY_COLUMNS: list[Column] = [
    ("ID", _key("id")),
    ("Event", _key("event_id")),
    ("Subscription", _key("subscription_id")),
    ("Status", _key("status")),
    ("Attempts", _key("attempts")),
    ("Last code", _key("last_status_code")),
    ("Last error", _key("last_error")),
    ("Next attempt", _time("next_attempt_at")),
    ("Updated", _time("updated_at")),
]
DELIVERY_DETAILS: list[Column] = [
    *DELIVERY_COLUMNS[:5],
    ("Mode", _key("mode")),
    *DELIVERY_COLUMNS[5:],
    ("Created", _time("created_at")),
]
ATTEMPT_COLUMNS: list[Column] = [
    ("#", _key("number")),
    ("Trigger", _key("trigger")),
    ("Started", _time("started_at")),
    ("Code", _key("status_code")),
    ("Error", _error),
    ("ms", lambda a: round(a["duration_ms"]) if a.get("duration_ms") is not None else None),
    ("Outcome", _key("outcome")),
    ("Next attempt", _time("next_attempt_at")),
    ("Response", lambda a: _excerpt(a.get("response_excerpt"))),
]
SUBSCRIPTION_COLUMNS: list[Column] = [
    ("ID", _key("id")),
    ("Description", _key("description")),
    ("URL", _key("url")),
    ("Sources", _key("sources")),
    ("Event types", _key("event_types")),
    ("Mode", _key("mode")),
    ("State", _state),
]
SUBSCRIPTION_DETAILS: list[Column] = [
    *SUBSCRIPTION_COLUMNS,
    ("Headers", lambda s: sorted(s.get("headers") or {})),
    ("Timeout (s)", _key("timeout_s")),
    ("Retry", _key("retry")),
    ("Svix headers", _key("svix_headers")),
    ("Created", _time("created_at")),
    ("Updated", _time("updated_at")),
    ("Old secret until", _time("previous_secret_expires_at")),
]
SOURCE_COLUMNS: list[Column] = [
    ("Name", _key("name")),
    ("Description", _key("description")),
    ("Verification", lambda s: (s.get("verification") or {}).get("scheme")),
    ("Secrets", lambda s: (s.get("verification") or {}).get("secret_count")),
    ("Event type header", _key("event_type_header")),
    ("Idempotency header", _key("idempotency_header")),
]
SOURCE_DETAILS: list[Column] = [
    *SOURCE_COLUMNS,
    ("Verification config", _key("verification")),
    ("Created", _time("created_at")),
    ("Updated", _time("updated_at")),
]


# --- listing -------------------------------------------------------------------------------

StatusOpt = Annotated[DeliveryStatus | None, typer.Option(help="Only deliveries in this state.")]
SinceOpt = Annotated[str | None, typer.Option(help="From this ISO 8601 time.")]
UntilOpt = Annotated[str | None, typer.Option(help="Up to this ISO 8601 time.")]
LimitOpt = Annotated[int, typer.Option(min=1, max=500, help="Rows per page.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Follow every page, not just the first.")]
SubscriptionOpt = Annotated[str | None, typer.Option("--subscription", help="Subscription id.")]
EventId = Annotated[str, typer.Argument(metavar="EVENT_ID", show_default=False)]
DeliveryId = Annotated[str, typer.Argument(metavar="DELIVERY_ID", show_default=False)]
SubscriptionId = Annotated[str, typer.Argument(metavar="SUBSCRIPTION_ID", show_default=False)]
SourceName = Annotated[str, typer.Argument(metavar="NAME", show_default=False)]


def _window(since: str | None, until: str | None) -> dict[str, str | None]:
    """``since``/``until`` checked here, so a typo is a usage error and not a 422."""
    for flag, value in (("--since", since), ("--until", until)):
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise CliError(f"{flag} must be an ISO 8601 time, got {value!r}", 2) from None
    return {"since": since, "until": until}


def _fetch(relay: Relay, path: str, params: Mapping[str, Any], everything: bool) -> Any:
    """One page, or with ``everything`` every page merged (``next_cursor`` then null)."""
    page = relay.call("GET", path, params=params)
    rows = list(page["data"])
    while everything and page.get("next_cursor"):
        page = relay.call("GET", path, params={**params, "cursor": page["next_cursor"]})
        rows += page["data"]
    return {**page, "data": rows}


def _list(
    relay: Relay, path: str, params: Mapping[str, Any], everything: bool, columns: list[Column]
) -> None:
    page = _fetch(relay, path, params, everything)
    more = "More on the next page: use --all." if page.get("next_cursor") else ""
    _emit(relay, page, _table(page["data"], columns), more)


def _status(status: DeliveryStatus | None) -> str | None:
    return status.value if status else None


# --- events --------------------------------------------------------------------------------

events_app = typer.Typer(help="Inspect received events.", no_args_is_help=True)


@_command(events_app, "list")
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
) -> None:
    """Events, newest first."""
    params: dict[str, Any] = {"source": source, "event_type": event_type, "limit": limit}
    params |= {"status": _status(status)} | _window(since, until)
    _list(relay, "/api/events", params, everything, EVENT_COLUMNS)


@_command(events_app, "show")
def events_show(relay: Relay, event_id: EventId) -> None:
    """An event's metadata and its deliveries."""
    event = relay.call("GET", _path("events", event_id))
    deliveries = _table(event["deliveries"], DELIVERY_COLUMNS, "Deliveries")
    _emit(relay, event, _details(event, EVENT_DETAILS), deliveries)


@_command(events_app, "body")
def events_body(relay: Relay, event_id: EventId) -> None:
    """Write an event's raw body to stdout, byte for byte."""
    response = relay.request("GET", _path("events", event_id, "body"))
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()


# --- deliveries ----------------------------------------------------------------------------

deliveries_app = typer.Typer(help="Inspect deliveries and their attempts.", no_args_is_help=True)


@_command(deliveries_app, "list")
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
    params: dict[str, Any] = {"subscription_id": subscription, "status": _status(status)}
    params |= _window(since, until) | {"limit": limit}
    _list(relay, "/api/deliveries", params, everything, DELIVERY_COLUMNS)


@_command(deliveries_app, "show")
def deliveries_show(relay: Relay, delivery_id: DeliveryId) -> None:
    """A delivery's status and every attempt made."""
    delivery = relay.call("GET", _path("deliveries", delivery_id))
    attempts = _table(delivery["attempt_log"], ATTEMPT_COLUMNS, "Attempts")
    _emit(relay, delivery, _details(delivery, DELIVERY_DETAILS), attempts)


# --- replay --------------------------------------------------------------------------------

replay_app = typer.Typer(help="Send events and deliveries again.", no_args_is_help=True)


@_command(replay_app, "event")
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
    replay = relay.call("POST", _path("events", event_id, "replay"), body=body)
    deliveries = replay["deliveries"]
    done = f"Replayed {event_id}: {len(deliveries)} delivery(ies) queued."
    _emit(relay, replay, _table(deliveries, DELIVERY_COLUMNS), done)


@_command(replay_app, "delivery")
def replay_delivery(relay: Relay, delivery_id: DeliveryId) -> None:
    """Attempt one delivery again now (any status but delivering)."""
    delivery = relay.call("POST", _path("deliveries", delivery_id, "retry"))
    _emit(relay, delivery, f"Delivery {delivery_id} requeued (status {delivery['status']}).")


@_command(replay_app, "dead-letters")
def replay_dead_letters(
    relay: Relay,
    subscription: SubscriptionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Deliveries per request.")] = 100,
) -> None:
    """Requeue dead deliveries (all, or one subscription's, or a time window's)."""
    filters = {"subscription_id": subscription} | _window(since, until)
    filters = {k: v for k, v in filters.items() if v is not None}
    total = relay.call("GET", "/api/dead-letters", params={**filters, "limit": 1})["total"]
    requeued, remaining, after = 0, total, None
    # Walk the dead letters in id order, each call starting after the last one seen: one that
    # dies again at once (a 4xx) goes back into the index behind us, not in front.
    with Progress(console=_console(stderr=True), disable=relay.as_json) as progress:
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
    _emit(relay, result, f"Requeued {requeued} dead delivery(ies).{left}")


# --- subscriptions -------------------------------------------------------------------------

subscriptions_app = typer.Typer(help="Manage subscriptions.", no_args_is_help=True)


def _headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header must look like 'Name: value', got {name.strip()!r}", 2)
        headers[name.strip()] = content.strip()
    return headers


def _secret_line(secret: str) -> str:
    return f"Secret (shown once): {secret}"


@_command(subscriptions_app, "list")
def subscriptions_list(relay: Relay) -> None:
    """Every subscription."""
    subs = relay.call("GET", "/api/subscriptions")
    _emit(relay, subs, _table(subs["data"], SUBSCRIPTION_COLUMNS))


@_command(subscriptions_app, "show")
def subscriptions_show(relay: Relay, subscription_id: SubscriptionId) -> None:
    """One subscription."""
    sub = relay.call("GET", _path("subscriptions", subscription_id))
    _emit(relay, sub, _details(sub, SUBSCRIPTION_DETAILS))


@_command(subscriptions_app, "create", url_flags=("--relay-url",))
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
) -> None:
    """Create a subscription; its signing secret is printed once."""
    body: dict[str, Any] = {"url": url, "sources": source, "mode": mode.value}
    body |= {"description": description, "headers": _headers(header or [])}
    if event_type:
        body["event_types"] = event_type
    sub = relay.call("POST", "/api/subscriptions", body=body)
    _emit(relay, sub, _details(sub, SUBSCRIPTION_DETAILS), _secret_line(sub["secret"]))


def _subscription_action(action: str, done: str, doc: str) -> CommandFn:
    def act(relay: Relay, subscription_id: SubscriptionId) -> None:
        sub = relay.call("POST", _path("subscriptions", subscription_id, action))
        _emit(relay, sub, f"Subscription {subscription_id} {done}.")

    act.__doc__ = doc
    return act


_command(subscriptions_app, "pause")(
    _subscription_action("pause", "paused", "Stop delivering; deliveries wait until resumed.")
)
_command(subscriptions_app, "resume")(
    _subscription_action("resume", "resumed", "Deliver again, the waiting deliveries first.")
)


@_command(subscriptions_app, "rotate-secret")
def subscriptions_rotate_secret(relay: Relay, subscription_id: SubscriptionId) -> None:
    """Issue a new signing secret (printed once); the old one signs too for a while."""
    rotated = relay.call("POST", _path("subscriptions", subscription_id, "rotate-secret"))
    until = f"The previous secret also signs until {_ts(rotated['previous_secret_expires_at'])}."
    _emit(relay, rotated, _secret_line(rotated["secret"]), until)


@_command(subscriptions_app, "test")
def subscriptions_test(relay: Relay, subscription_id: SubscriptionId) -> None:
    """Send a test event to the subscription now and show what it answered."""
    result = relay.call("POST", _path("subscriptions", subscription_id, "test"))
    code = result.get("status_code")
    outcome = f"{result['status']}" + (f" ({code})" if code is not None else "")
    error = f": {result['error']}" if result.get("error") else ""
    line = f"Test delivery {result['delivery_id']} (event {result['event_id']}): {outcome}"
    _emit(relay, result, line + error)


@_command(subscriptions_app, "delete")
def subscriptions_delete(relay: Relay, subscription_id: SubscriptionId) -> None:
    """Delete a subscription."""
    relay.call("DELETE", _path("subscriptions", subscription_id))
    _emit(relay, {"deleted": subscription_id}, f"Deleted subscription {subscription_id}.")


# --- sources -------------------------------------------------------------------------------

sources_app = typer.Typer(help="Manage sources (webhook entry points).", no_args_is_help=True)


def _read_json(file: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        spec = json.loads(text)
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}", 2) from None
    except ValueError as exc:
        raise CliError(f"{file} is not JSON: {exc}", 2) from None
    if not isinstance(spec, dict):
        raise CliError(f"{file} must hold a JSON object", 2)
    return spec


@_command(sources_app, "list")
def sources_list(relay: Relay) -> None:
    """Every source."""
    sources = relay.call("GET", "/api/sources")
    _emit(relay, sources, _table(sources["data"], SOURCE_COLUMNS))


@_command(sources_app, "show")
def sources_show(relay: Relay, name: SourceName) -> None:
    """One source (secrets are write-only: only their count shows)."""
    source = relay.call("GET", _path("sources", name))
    _emit(relay, source, _details(source, SOURCE_DETAILS))


@_command(sources_app, "put")
def sources_put(
    relay: Relay,
    name: SourceName,
    file: Annotated[
        Path | None, typer.Option("--file", help="JSON body ('-' for stdin); options win.")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    event_type_header: Annotated[str | None, typer.Option()] = None,
    idempotency_header: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create or replace a source (fields not given take their defaults)."""
    body = _read_json(file) if file else {}
    given = {
        "description": description,
        "event_type_header": event_type_header,
        "idempotency_header": idempotency_header,
    }
    body |= {k: v for k, v in given.items() if v is not None}
    response = relay.request("PUT", _path("sources", name), body=body)
    verb = "Created" if response.status_code == 201 else "Updated"
    source = response.json()
    _emit(relay, source, f"{verb} source {name}.", _details(source, SOURCE_DETAILS))


@_command(sources_app, "delete")
def sources_delete(relay: Relay, name: SourceName) -> None:
    """Delete a source."""
    relay.call("DELETE", _path("sources", name))
    _emit(relay, {"deleted": name}, f"Deleted source {name}.")


# --- apply ---------------------------------------------------------------------------------

_VERBS: dict[apply_file.Action, str] = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "unchanged": "unchanged",
}


def _execute(relay: Relay, change: apply_file.Change) -> dict[str, Any] | None:
    """Make one change; returns the created subscription (with its secret) if it was one."""
    if change.kind == "source":
        if change.action == "delete":
            relay.call("DELETE", _path("sources", change.name))
        else:
            relay.call("PUT", _path("sources", change.name), body=change.body)
        return None
    if change.action == "create":
        created: dict[str, Any] = relay.call("POST", "/api/subscriptions", body=change.body)
        return created
    assert change.id is not None
    method = "DELETE" if change.action == "delete" else "PATCH"
    relay.call(method, _path("subscriptions", change.id), body=change.body)
    return None


def _apply_one(relay: Relay, change: apply_file.Change, dry_run: bool) -> dict[str, Any]:
    """Make one change (unless ``dry_run``); its report entry, with a new secret if any."""
    act = not dry_run and change.action != "unchanged"
    created = _execute(relay, change) if act else None
    entry: dict[str, Any] = {"kind": change.kind, "name": change.name, "action": change.action}
    entry |= {"id": created["id"] if created else change.id, "fields": list(change.fields)}
    if created:
        entry["secret"] = created["secret"]
    return entry


def _entry_lines(entry: Mapping[str, Any], dry_run: bool) -> list[str]:
    """``subscription billing sub_x: updated (url)`` and, once, a created one's secret."""
    action = entry["action"]
    verb = f"would {action}" if dry_run and action != "unchanged" else _VERBS[action]
    fields = f" ({', '.join(entry['fields'])})" if entry["fields"] else ""
    ident = f" {entry['id']}" if entry["id"] else ""
    lines = [f"{entry['kind']} {entry['name'] or '(unnamed)'}{ident}: {verb}{fields}"]
    if "secret" in entry:
        lines.append("  " + _secret_line(entry["secret"]))
    return lines


def apply(
    relay: Relay,
    file: Annotated[Path, typer.Argument(help="A .toml, .yaml or .yml file.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes only.")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete sources and subscriptions not in the file.")
    ] = False,
    push_secrets: Annotated[
        bool,
        typer.Option(
            "--push-secrets",
            help="Re-send secrets the relay never shows back (source secrets, credential-like "
            "subscription headers), so changed values are applied.",
        ),
    ] = False,
) -> None:
    """Create or update sources and subscriptions to match FILE, idempotently.

    Values like ${ENV:NAME} come from the environment. Subscriptions are matched by their
    name in the file, kept as their description. See relay/apply.py for the format.
    """
    desired = apply_file.load(file)
    sources = relay.call("GET", "/api/sources")["data"]
    subscriptions = relay.call("GET", "/api/subscriptions")["data"]
    changes = apply_file.plan(
        desired, sources, subscriptions, prune=prune, push_secrets=push_secrets
    )
    console = _console()
    report = []
    for change in changes:
        report.append(_apply_one(relay, change, dry_run))
        if not relay.as_json:  # as it goes: if a later change fails, these stand
            for line in _entry_lines(report[-1], dry_run):
                console.print(Text(line))
    n = apply_file.counts(changes)
    totals = {verb: n[action] for action, verb in _VERBS.items()}
    done = apply_file.summary(changes)
    people = f"Dry run, nothing changed. Would be: {done}" if dry_run else done
    _emit(relay, {"dry_run": dry_run, "changes": report, **totals}, Text(people))


# --- the whole set -------------------------------------------------------------------------

admin_app = typer.Typer(no_args_is_help=True)
admin_app.add_typer(events_app, name="events")
admin_app.add_typer(deliveries_app, name="deliveries")
admin_app.add_typer(replay_app, name="replay")
admin_app.add_typer(subscriptions_app, name="subscriptions")
admin_app.add_typer(sources_app, name="sources")
_command(admin_app, "apply")(apply)
