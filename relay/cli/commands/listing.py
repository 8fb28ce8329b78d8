"""``events list`` and ``deliveries list``: one page of a list endpoint, or every page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from relay.cli.client import Relay, api_path
from relay.cli.render import Column, emit, table


def _fetch(relay: Relay, path: str, params: Mapping[str, Any], everything: bool) -> Any:
    """One page, or with ``everything`` every page merged (``next_cursor`` then null)."""
    page = relay.call("GET", path, params=params)
    rows = list(page["data"])
    while everything and page.get("next_cursor"):
        page = relay.call("GET", path, params={**params, "cursor": page["next_cursor"]})
        rows += page["data"]
    return {**page, "data": rows}


def show_list(
    relay: Relay,
    path: str,
    params: Mapping[str, Any],
    everything: bool,
    columns: Sequence[Column],
    named: Mapping[str, str | None] | None = None,
) -> None:
    """One page (or all) as a table. ``named`` maps a collection (``sources``) to the name a
    filter gave: when nothing matched, a name that does not exist is an error (exit 1), not
    an empty table that reads as "no events yet"."""
    page = _fetch(relay, path, params, everything)
    if not page["data"]:
        for collection, name in (named or {}).items():
            if name is not None:
                relay.call("GET", api_path(collection, name))
    more = "More on the next page: use --all." if page.get("next_cursor") else ""
    emit(relay.as_json, page, table(page["data"], columns), more)
