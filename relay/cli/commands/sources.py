"""``relay sources``: create or replace, inspect and delete sources."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from relay.cli.client import CliError, Relay, YesOpt, api_path, command, confirm
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


class Scheme(StrEnum):
    """The verification schemes the API takes (relay.domain.verification)."""

    NONE = "none"
    GITHUB = "github"
    STRIPE = "stripe"
    STANDARD_WEBHOOKS = "standard-webhooks"
    SHOPIFY = "shopify"
    SLACK = "slack"
    HMAC = "hmac"


def _secret(value: str) -> str:
    """A secret given inline, or read from a file as ``@path`` (kept out of shell history)."""
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"--secret: cannot read {value[1:]}: {exc.strerror or exc}", 2) from None


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
    verification: Annotated[
        Scheme | None, typer.Option(help="How senders prove who they are.")
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="A signing secret, or @file to read it from (repeatable: any may match). "
            "Also RELAY_SOURCE_SECRET.",
            envvar="RELAY_SOURCE_SECRET",
            show_envvar=False,
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="How old a signed timestamp may be."),
    ] = None,
    signature_header: Annotated[
        str | None, typer.Option(help="hmac: the header holding the signature.")
    ] = None,
    algorithm: Annotated[str | None, typer.Option(help="hmac: sha256 or sha512.")] = None,
    encoding: Annotated[str | None, typer.Option(help="hmac: hex or base64.")] = None,
    signature_prefix: Annotated[
        str | None, typer.Option(help="hmac: text before the signature (e.g. sha256=).")
    ] = None,
) -> None:
    """Create or replace a source (fields not given take their defaults).

    With --verification, requests must be signed: e.g. --verification github --secret
    @github-secret.txt. Secrets are write-only: only their count shows afterwards."""
    body = _read_json(file) if file else {}
    given = {
        "description": description,
        "event_type_header": event_type_header,
        "idempotency_header": idempotency_header,
        "max_body_bytes": max_body_bytes,
    }
    body |= {k: v for k, v in given.items() if v is not None}
    checks = {
        "secrets": [_secret(value) for value in secret] if secret else None,
        "tolerance_s": tolerance,
        "header": signature_header,
        "algorithm": algorithm,
        "encoding": encoding,
        "prefix": signature_prefix,
    }
    checks = {k: v for k, v in checks.items() if v is not None}
    if verification is not None or checks:
        if verification is None and "verification" not in body:
            raise CliError("--secret and the signature options need --verification", 2)
        scheme = verification.value if verification else None
        body["verification"] = {**body.get("verification", {}), **checks}
        if scheme:
            body["verification"]["scheme"] = scheme
    response = relay.request("PUT", api_path("sources", name), body=body)
    verb = "Created" if response.status_code == 201 else "Updated"
    source = response.json()
    emit(relay.as_json, source, f"{verb} source {name}.", details(source, SOURCE_DETAILS))


@command(sources_app, "delete")
def sources_delete(relay: Relay, name: SourceName, yes: YesOpt = False) -> None:
    """Delete a source (its URL then answers 404; asks first unless --yes)."""
    confirm(f"Delete source {name}?", yes)
    relay.call("DELETE", api_path("sources", name))
    emit(relay.as_json, {"deleted": name}, f"Deleted source {name}.")
