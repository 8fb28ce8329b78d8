"""What the admin commands print: the API's JSON with ``--json``, else rich tables and lines."""

from __future__ import annotations

import json
import os
import re
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


class Column(NamedTuple):
    header: str
    get: Callable[[Mapping[str, Any]], object]
    # 0: always shown. Otherwise the column goes when the table does not fit the terminal
    # even with its shortened columns cut to their least, the highest number first.
    drop: int = 0
    # Never cut or wrapped (ids): half an id cannot be copied or read.
    whole: bool = False
    # Above 0: the values (URLs, errors) are cut with "…" to fit, down to this many
    # characters, rather than the column being dropped or the row wrapped.
    shorten: int = 0


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


def plural(count: int, noun: str) -> str:
    """``1 delivery``, ``2 deliveries``, ``0 events``."""
    if count == 1:
        return f"{count} {noun}"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return f"{count} {noun[:-1]}ies"
    return f"{count} {noun}s"


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
        # Fields left unset (a retry override's nulls) are noise here; --json shows them.
        given = {k: v for k, v in value.items() if v is not None}
        return Text(json.dumps(given, separators=(",", ":")))
    return Text(str(value))


def field(name: str) -> Callable[[Mapping[str, Any]], object]:
    return lambda row: row.get(name)


def time_field(name: str) -> Callable[[Mapping[str, Any]], object]:
    return lambda row: timestamp(row.get(name))


def short_time_field(name: str) -> Callable[[Mapping[str, Any]], object]:
    """To the second, for tables (``2026-11-24T18:10:03Z``: still what ``--since`` takes)."""

    def get(row: Mapping[str, Any]) -> object:
        shown = timestamp(row.get(name))
        return re.sub(r"\.\d+Z$", "Z", shown)

    return get


def _natural(header: str, cells: Sequence[Text]) -> int:
    return max([len(header), *(cell.cell_len for cell in cells)])


def _widths(columns: Sequence[Column], cells: Sequence[Sequence[Text]], room: int) -> list[int]:
    """Each column's width: the natural one, but the shortened columns share what ``room``
    leaves after the others (each at least its ``shorten``, or its header)."""
    natural = [_natural(c.header, [row[i] for row in cells]) for i, c in enumerate(columns)]
    least = [
        min(n, max(c.shorten, len(c.header))) if c.shorten else n
        for c, n in zip(columns, natural, strict=True)
    ]
    widths = list(least)
    # What is left goes a character at a time to the column cut the most, so a long URL
    # gets the room before a description that is only a little too long.
    for _ in range(max(room - sum(least), 0)):
        cut = [natural[i] - widths[i] for i in range(len(columns))]
        most = max(range(len(columns)), key=lambda i: cut[i])
        if cut[most] <= 0:
            break
        widths[most] += 1
    return widths


def _table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], title: str, width: int
) -> tuple[Table, bool]:
    """The table at ``width``, and whether it fits there (its shortened columns at their
    least, when it does not)."""
    out = Table(title=title or None, title_justify="left")
    cells = [[_cell(column.get(row)) for column in columns] for row in rows]
    # A heavy-box table spends 3 characters per column (padding and a rule) and 1 more.
    room = width - (3 * len(columns) + 1)
    widths = _widths(columns, cells, room)
    fits = sum(widths) <= room
    for column, chars in zip(columns, widths, strict=True):
        if column.shorten:
            out.add_column(column.header, no_wrap=True, overflow="ellipsis", width=chars)
        else:
            out.add_column(column.header, overflow="fold", no_wrap=column.whole)
    for row_cells in cells:
        out.add_row(*row_cells)
    return out, fits


@dataclass
class FittedTable:
    """A table that keeps one line per row at the width it is printed at: long values
    (URLs, errors) are cut with "…" first, then the least important columns are left out;
    past that, only the columns that may wrap do."""

    rows: Sequence[Mapping[str, Any]]
    columns: Sequence[Column]
    title: str = ""

    def fitted(self, width: int) -> Table:
        shown = list(self.columns)
        while True:
            out, fits = _table(self.rows, shown, self.title, width)
            droppable = [c for c in shown if c.drop]
            if fits or not droppable:
                return out
            shown.remove(max(droppable, key=lambda c: c.drop))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Table]:
        yield self.fitted(options.max_width)


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
