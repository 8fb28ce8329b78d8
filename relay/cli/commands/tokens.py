"""``relay tokens``: create, list, show and revoke API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from relay.cli.client import Relay, api_path, command
from relay.cli.help import group
from relay.cli.render import Column, details, emit, field, table, time_field
from relay.domain.access import Role

tokens_app = group(
    help="Manage API tokens (a role, and optionally the sources they are limited to)."
)

TokenId = Annotated[str, typer.Argument(metavar="TOKEN_ID", show_default=False)]

TOKEN_COLUMNS: list[Column] = [
    Column("ID", field("id"), whole=True),
    Column("Name", field("name")),
    Column("Role", field("role")),
    Column("Sources", lambda t: t.get("sources") or "all", drop=1),
    Column("Last used", time_field("last_used_at"), drop=2),
    Column("Expires", time_field("expires_at"), drop=3),
]
TOKEN_DETAILS: list[Column] = [
    *TOKEN_COLUMNS,
    Column("Created", time_field("created_at")),
    Column("Created by", field("created_by")),
]


@command(tokens_app, "list")
def tokens_list(relay: Relay) -> None:
    """Every token (a scoped admin sees those within its sources); never their secrets."""
    found = relay.call("GET", "/api/tokens")
    emit(relay.as_json, found, table(found["data"], TOKEN_COLUMNS))


@command(tokens_app, "show")
def tokens_show(relay: Relay, token_id: TokenId) -> None:
    """One token."""
    token = relay.call("GET", api_path("tokens", token_id))
    emit(relay.as_json, token, details(token, TOKEN_DETAILS))


@command(tokens_app, "create")
def tokens_create(
    relay: Relay,
    name: Annotated[str, typer.Option("--name", help="Who or what holds it.")],
    role: Annotated[Role, typer.Option("--role", help="viewer, operator or admin.")],
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Limit it to this source (repeatable; default: all)."),
    ] = None,
    expires_at: Annotated[
        datetime | None,
        typer.Option("--expires-at", help="Refused from then on (ISO 8601, UTC if no zone)."),
    ] = None,
) -> None:
    """Create a token; its secret is printed once, and never again."""
    body: dict[str, Any] = {"name": name, "role": role.value}
    if source:
        body["sources"] = source
    if expires_at is not None:
        body["expires_at"] = expires_at.isoformat()
    created = relay.call("POST", "/api/tokens", body=body)
    emit(
        relay.as_json,
        created,
        details(created, TOKEN_DETAILS),
        f"Token (shown once): {created['token']}",
    )


@command(tokens_app, "revoke")
def tokens_revoke(relay: Relay, token_id: TokenId) -> None:
    """Revoke a token: every API process refuses it from its next request."""
    relay.call("DELETE", api_path("tokens", token_id))
    emit(relay.as_json, {"revoked": token_id}, f"Revoked token {token_id}.")
