"""The CLI's tables at a terminal's width: ids stay whole, rows stay one line (no relay)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from relay.cli.columns import (
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    EVENT_DETAILS,
    SUBSCRIPTION_COLUMNS,
)
from relay.cli.render import Column, details, table

EVENT = {
    "id": "evt_01JD3Y9T0W6Y7Q1G8B3C5D7E9F",
    "received_at": "2026-11-24T18:10:03.123Z",
    "source": "github",
    "event_type": "pull_request.opened",
    "body_bytes": 10_240,
}
DELIVERY = {
    "id": "dlv_01JD3Y9T0W6Y7Q1G8B3C5D7E9G",
    "event_id": EVENT["id"],
    "subscription_id": "sub_01JD3Y9T0W6Y7Q1G8B3C5D7E9H",
    "status": "failed",
    "attempts": 3,
    "last_status_code": None,
    "last_error": "ConnectError: All connection attempts failed",
    "next_attempt_at": "2026-11-24T18:11:23.000Z",
    "updated_at": "2026-11-24T18:10:03.123Z",
}
SUBSCRIPTION = {
    "id": "sub_01JD3Y9T0W6Y7Q1G8B3C5D7E9H",
    "description": "billing",
    "url": "https://billing.example.com/hooks/github",
    "sources": ["github"],
    "event_types": ["push", "pull_request.*"],
    "mode": "reliable",
    "enabled": True,
}


def printed(rows: list[dict[str, object]], columns: list[Column], width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width).print(table(rows, columns))
    return out.getvalue().splitlines()


def headers(lines: list[str]) -> list[str]:
    return [cell.strip() for cell in lines[1].strip("┃").split("┃")]


@pytest.mark.parametrize(
    ("row", "columns"),
    [(EVENT, EVENT_COLUMNS), (DELIVERY, DELIVERY_COLUMNS), (SUBSCRIPTION, SUBSCRIPTION_COLUMNS)],
)
@pytest.mark.parametrize("width", [80, 120])
def test_rows_stay_one_line_and_ids_whole(
    row: dict[str, object], columns: list[Column], width: int
) -> None:
    lines = printed([row, row], columns, width)
    assert all(len(line) <= width for line in lines)
    # Top border, header, rule, two rows, bottom border: no row spilled onto a second line.
    assert len(lines) == 6, "\n".join(lines)
    assert all(str(row["id"]) in line for line in lines[3:5])


def test_at_80_columns_long_values_are_cut_before_the_columns_that_matter_go() -> None:
    long_error = {
        **DELIVERY,
        "last_error": "ConnectError: " + "all connection attempts failed " * 3,
    }
    assert headers(printed([long_error], DELIVERY_COLUMNS, 80)) == [
        "ID",
        "Status",
        "Tries",
        "Code",
        "Last error",
    ]
    [row] = printed([long_error], DELIVERY_COLUMNS, 80)[3:4]
    assert "ConnectError: all" in row
    assert row.rstrip(" │").endswith("…")

    assert headers(printed([EVENT], EVENT_COLUMNS, 80))[:4] == ["ID", "Received", "Source", "Type"]

    long_url = {**SUBSCRIPTION, "url": "https://billing.example.com/hooks/" + "x" * 80}
    lines = printed([long_url], SUBSCRIPTION_COLUMNS, 80)
    assert headers(lines) == ["ID", "Description", "URL", "State"]
    assert "https://billing.exa…" in lines[3]
    assert "active" in lines[3]


def test_less_important_columns_go_first_as_the_terminal_narrows() -> None:
    wide = headers(printed([DELIVERY], DELIVERY_COLUMNS, 240))
    assert wide == [c.header for c in DELIVERY_COLUMNS]
    at_120 = headers(printed([DELIVERY], DELIVERY_COLUMNS, 120))
    assert at_120[:2] == ["ID", "Status"]
    assert "Updated" not in at_120
    assert "Event" not in at_120
    at_80 = headers(printed([DELIVERY], DELIVERY_COLUMNS, 80))
    assert set(at_80) < set(at_120)
    assert {"ID", "Status", "Code", "Last error"} <= set(at_80)


def test_a_table_too_narrow_even_so_wraps_the_other_columns_not_the_id() -> None:
    long = {**SUBSCRIPTION, "url": "https://billing.example.com/" + "x" * 80}
    lines = printed([long], SUBSCRIPTION_COLUMNS, 70)
    assert all(len(line) <= 70 for line in lines)
    assert sum(str(long["id"]) in line for line in lines) == 1
    assert headers(lines) == ["ID", "URL", "State"]


def test_times_show_to_the_second_in_lists_in_full_in_details() -> None:
    [row] = printed([EVENT], EVENT_COLUMNS, 120)[3:4]
    assert "2026-11-24T18:10:03Z" in row  # RFC 3339 still: what --since takes back
    # A relay from before RFC 3339 answered epoch milliseconds: written the same way.
    [old] = printed([{**EVENT, "received_at": 1_764_007_803_123}], EVENT_COLUMNS, 120)[3:4]
    assert "2025-11-24T18:10:03Z" in old
    out = io.StringIO()
    Console(file=out, width=80).print(details(EVENT, EVENT_DETAILS))
    assert "2026-11-24T18:10:03.123Z" in out.getvalue()
