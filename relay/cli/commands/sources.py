"""``relay sources``: create or replace, inspect and delete sources."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from relay.cli.client import CliError, Relay, api_path, command
from relay.cli.columns import SOURCE_COLUMNS, SOURCE_DETAILS
from relay.cli.help import group
from relay.cli.render import details, emit, table

sources_app = group(help="Manage sources (webhook entry points).")

SourceName = Annotated[str, typer.Argument(metavar="NAME", show_default=False)]


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


@command(sources_app, "list")
def sources_list(relay: Relay) -> None:
    """Every source."""
    sources = relay.call("GET", "/api/sources")
    emit(relay.as_json, sources, table(sources["data"], SOURCE_COLUMNS))


@command(sources_app, "show")
def sources_show(relay: Relay, name: SourceName) -> None:
    """One source (secrets are write-only: only their count shows)."""
    source = relay.call("GET", api_path("sources", name))
    emit(relay.as_json, source, details(source, SOURCE_DETAILS))


@command(sources_app, "put")
def sources_put(
    relay: Relay,
    name: SourceName,
    file: Annotated[
        Path | None, typer.Option("--file", help="JSON body ('-' for stdin); options win.")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    event_type_header: Annotated[str | None, typer.Option()] = None,
    idempotency_header: Annotated[str | None, typer.Option()] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest body (default RELAY_MAX_BODY_BYTES).")
    ] = None,
) -> None:
    """Create or replace a source (fields not given take their defaults)."""
    body = _read_json(file) if file else {}
    given = {
        "description": description,
        "event_type_header": event_type_header,
        "idempotency_header": idempotency_header,
        "max_body_bytes": max_body_bytes,
    }
    body |= {k: v for k, v in given.items() if v is not None}
    response = relay.request("PUT", api_path("sources", name), body=body)
    verb = "Created" if response.status_code == 201 else "Updated"
    source = response.json()
    emit(relay.as_json, source, f"{verb} source {name}.", details(source, SOURCE_DETAILS))


@command(sources_app, "delete")
def sources_delete(relay: Relay, name: SourceName) -> None:
    """Delete a source."""
    relay.call("DELETE", api_path("sources", name))
    emit(relay.as_json, {"deleted": name}, f"Deleted source {name}.")
