"""What the admin commands print: the API's JSON with ``--json``, else rich tables and lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

EXCERPT_CHARS = 60

Column = tuple[str, Callable[[Mapping[str, Any]], object]]


def console(stderr: bool = False) -> Console:
    # Not a terminal (a pipe, a test): wide enough that ids and URLs are never cut.
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 240)


def emit(as_json: bool, data: Any, *people: RenderableType | str) -> None:
    """The API's JSON with ``--json``, else what people read (empty lines left out)."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    out = console()
    for item in people:
        if item != "":
            out.print(item, highlight=False)


def timestamp(ms: object) -> str:
    if not isinstance(ms, int | float):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def excerpt(text: object) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def secret_line(secret: str) -> str:
    return f"Secret (shown once): {secret}"


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


def field(name: str) -> Callable[[Mapping[str, Any]], object]:
    return lambda row: row.get(name)


def time_field(name: str) -> Callable[[Mapping[str, Any]], object]:
    return lambda row: timestamp(row.get(name))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], title: str = "") -> Table:
    out = Table(title=title or None, title_justify="left")
    for header, _ in columns:
        out.add_column(header, overflow="fold")
    for row in rows:
        out.add_row(*(_cell(get(row)) for _, get in columns))
    return out


def details(obj: Mapping[str, Any], columns: Sequence[Column]) -> Table:
    out = Table.grid(padding=(0, 2))
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for header, get in columns:
        out.add_row(header, _cell(get(obj)))
    return out
