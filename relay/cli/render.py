"""What the admin commands print: the API's JSON with ``--json``, else rich tables and lines."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.table import Table
from rich.text import Text

from relay.domain.clock import rfc3339

EXCERPT_CHARS = 60
# Wider than any table: only to learn how wide a table would like to be.
_UNBOUNDED = 10_000


class Column(NamedTuple):
    header: str
    get: Callable[[Mapping[str, Any]], object]
    # 0: always shown. Otherwise the column goes when the table does not fit the terminal,
    # the highest number first, so the rest keep one line per row.
    drop: int = 0
    # Never wrapped (ids): half an id on the next line cannot be copied or read.
    whole: bool = False


def console(stderr: bool = False) -> Console:
    # Not a terminal (a pipe, a test): wide enough that ids and URLs are never cut, unless
    # COLUMNS says how wide.
    stream = sys.stderr if stderr else sys.stdout
    sized = stream.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(file=stream, width=None if sized else 240)


def emit(as_json: bool, data: Any, *people: RenderableType | str) -> None:
    """The API's JSON with ``--json``, else what people read (empty lines left out)."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    out = console()
    for item in people:
        if item != "":
            out.print(item, highlight=False)


def timestamp(value: object) -> str:
    """The API's RFC 3339 time as it is (what ``--since`` takes back); epoch milliseconds,
    from a relay older than this CLI, written the same way."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return rfc3339(int(value))
    return "-"


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


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], title: str) -> Table:
    out = Table(title=title or None, title_justify="left")
    for column in columns:
        out.add_column(column.header, overflow="fold", no_wrap=column.whole)
    for row in rows:
        out.add_row(*(_cell(column.get(row)) for column in columns))
    return out


@dataclass
class FittedTable:
    """A table that leaves out its least important columns until it fits the width it is
    printed at, so each row stays one line; past that, only the columns that may wrap do."""

    rows: Sequence[Mapping[str, Any]]
    columns: Sequence[Column]
    title: str = ""

    def fitted(self, console: Console, width: int) -> Table:
        shown = list(self.columns)
        while True:
            out = _table(self.rows, shown, self.title)
            droppable = [c for c in shown if c.drop]
            natural = console.measure(out, options=console.options.update_width(_UNBOUNDED))
            if not droppable or natural.maximum <= width:
                return out
            shown.remove(max(droppable, key=lambda c: c.drop))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Table]:
        yield self.fitted(console, options.max_width)


def table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], title: str = ""
) -> FittedTable:
    return FittedTable(rows, columns, title)


def details(obj: Mapping[str, Any], columns: Sequence[Column]) -> Table:
    out = Table.grid(padding=(0, 2))
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for column in columns:
        out.add_row(column.header, _cell(column.get(obj)))
    return out
