"""``relay listen`` and ``relay tail``: commands that hold a Server-Sent Events stream open.

``listen`` forwards each delivery of its listening subscription to a local URL and reports
the local answer back as the attempt; a dropped stream is opened again (deliveries wait in
the relay meanwhile). ``tail`` prints events and attempt outcomes as they happen. Both stop
on Ctrl-C with exit 0. Only light modules here: these start as fast as any admin command.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import httpx
import orjson
import typer

from relay.cli.client import CliError, Relay, api_path

# The relay sends a keep-alive at least every 15 s: silence past this is a dead stream.
_READ_TIMEOUT_S = 45.0
_RECONNECT_S = (0.5, 1.0, 2.0, 5.0)
_EXCERPT_BYTES = 1024


def _events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, decoded data) of each Server-Sent Event; comments (keep-alives) skipped."""
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield kind, orjson.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def _clock(ms: int | None = None) -> str:
    moment = datetime.now() if ms is None else datetime.fromtimestamp(ms / 1000)
    return moment.strftime("%H:%M:%S")


@contextlib.contextmanager
def _opened(
    relay: Relay, path: str, params: dict[str, Any] | None = None
) -> Iterator[httpx.Response]:
    """The stream's response; a refusal becomes the relay's one-line error."""
    timeout = httpx.Timeout(10.0, read=_READ_TIMEOUT_S)
    query = {k: v for k, v in (params or {}).items() if v is not None}
    with relay.client.stream("GET", path, params=query, timeout=timeout) as response:
        if response.is_error:
            response.read()
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.reason_phrase
            raise CliError(f"{response.status_code} {detail}")
        yield response


def _forward(
    local: httpx.Client, url: str, delivery: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    """POST one delivery to the local app; what it answered, as an attempt report."""
    started = time.perf_counter()
    report: dict[str, Any]
    try:
        with local.stream(
            "POST", url, content=base64.b64decode(delivery["body"]),
            headers=delivery["headers"], timeout=timeout_s,
        ) as response:  # fmt: skip
            excerpt = b""
            for chunk in response.iter_raw():
                excerpt += chunk
                if len(excerpt) >= _EXCERPT_BYTES:
                    break
            report = {
                "status_code": response.status_code,
                "response_excerpt": excerpt[:_EXCERPT_BYTES].decode(errors="replace"),
            }
    except httpx.HTTPError as exc:
        report = {"error": type(exc).__name__, "error_message": str(exc)[:500] or "no answer"}
    report["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return report


def _delivery_line(delivery: dict[str, Any], report: dict[str, Any]) -> str:
    shown = report.get("status_code") or report.get("error")
    event_type = delivery.get("event_type") or "-"
    attempt = f" (attempt {delivery['attempt']})" if delivery.get("attempt", 1) > 1 else ""
    return (
        f"{_clock()}  {event_type:<20} {shown!s:>4} {report['duration_ms']:>7.1f} ms  "
        f"{delivery['delivery_id']}{attempt}"
    )


SourceOpt = Annotated[str, typer.Option("--source", help="The source to listen to.")]
EventTypeOpt = Annotated[
    list[str] | None,
    typer.Option("--event-type", help="Only these event types (glob; repeatable)."),
]
ForwardOpt = Annotated[str, typer.Option("--forward", help="Local URL to POST deliveries to.")]
ListenerOpt = Annotated[
    str | None,
    typer.Option("--listener", help="Attach to this listener (its sub_ id) instead of a new one."),
]
KeepOpt = Annotated[bool, typer.Option("--keep", help="Leave the listener on the relay at exit.")]


def listen(
    relay: Relay,
    source: SourceOpt,
    forward: ForwardOpt,
    event_type: EventTypeOpt = None,
    listener: ListenerOpt = None,
    keep: KeepOpt = False,
) -> None:
    """Receive a source's webhooks here: each is POSTed to --forward, signed as usual, and
    the local answer is recorded as the delivery's attempt."""
    if listener is None:
        body = {"source": source, "event_types": event_type or ["*"], "forward_url": forward}
        created = relay.call("POST", "/api/listeners", body=body)
        listener = str(created["id"])
        typer.echo(f"Signing secret (shown once, for your app to verify): {created['secret']}")
    typer.echo(f"Listening to {source} as {listener}, forwarding to {forward} (Ctrl-C to stop)")
    try:
        with httpx.Client(trust_env=False) as local:
            _listen(relay, listener, forward, local)
    except KeyboardInterrupt:
        if keep:
            typer.echo(f"Stopped; {listener} stays (relay listen --listener {listener}).")
        else:
            relay.request("DELETE", api_path("listeners", listener))
            typer.echo(f"Stopped; {listener} removed.")


def _streamed(
    relay: Relay, path: str, params: dict[str, Any] | None = None
) -> Iterator[tuple[str, Any]]:
    """The stream's events, opened again whenever it drops (the relay restarting, a network
    blip): ``("connected", None)`` first, and after each reconnection. A refusal (401, 404)
    ends it with the relay's one-line error."""
    failures = 0
    while True:
        try:
            with _opened(relay, path, params) as response:
                if failures:
                    typer.echo(f"{_clock()}  reconnected")
                failures = 0
                yield "connected", None
                yield from _events(response.iter_lines())
            reason = "the relay closed the stream"
        except httpx.TransportError as exc:
            reason = f"connection lost ({type(exc).__name__})"
        except CliError as exc:
            if not str(exc).startswith("5"):  # refused: trying again will not help
                raise
            reason = str(exc)
        wait = _RECONNECT_S[min(failures, len(_RECONNECT_S) - 1)]
        failures += 1
        typer.echo(f"{_clock()}  {reason}; retrying in {wait:g} s")
        time.sleep(wait)


def _listen(relay: Relay, sub_id: str, forward: str, local: httpx.Client) -> None:
    timeout_s = 15.0
    for kind, data in _streamed(relay, api_path("listeners", sub_id, "stream")):
        if kind == "hello":
            timeout_s = float(data["timeout_s"])
        elif kind == "delivery":
            report = _forward(local, forward, data, timeout_s)
            path = api_path("listeners", sub_id, "deliveries", data["delivery_id"], "attempt")
            try:
                relay.request("POST", path, body=report)
            except CliError as exc:  # e.g. too late: it comes again
                typer.echo(f"{_clock()}  report not taken: {exc}", err=True)
            typer.echo(_delivery_line(data, report))
        elif kind == "gone":
            raise CliError(f"listener {sub_id} was removed")


def _tail_line(message: dict[str, Any]) -> str:
    event_type = message.get("event_type") or "-"
    head = f"{_clock(message.get('at'))}  {message['source']:<10} {event_type:<20}"
    if message.get("kind") == "event":
        return f"{head} {'received':<9} {message['event_id']}"
    shown = message.get("status_code") or message.get("error") or ""
    return (
        f"{head} {message['status']:<9} {shown!s:>4} {message.get('duration_ms') or 0:>7.1f} ms"
        f"  {message['delivery_id']} #{message['attempt']}"
    )


StatusOpt = Annotated[str | None, typer.Option("--status", help="'failed': only failed attempts.")]
TailSourceOpt = Annotated[str | None, typer.Option("--source", help="Only this source.")]


def tail(relay: Relay, source: TailSourceOpt = None, status: StatusOpt = None) -> None:
    """Events and delivery outcomes as they happen, one line each."""
    if status not in (None, "failed"):
        raise CliError("--status takes 'failed'", 2)
    greeted = False
    try:
        for kind, data in _streamed(relay, "/api/tail", {"source": source, "status": status}):
            if kind == "connected" and not greeted:
                greeted = True
                typer.echo(f"Tailing {source or 'every source'} (Ctrl-C to stop)")
            elif kind in ("event", "attempt"):
                typer.echo(orjson.dumps(data).decode() if relay.as_json else _tail_line(data))
    except KeyboardInterrupt:
        return
