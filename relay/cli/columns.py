"""Which fields of each API resource the tables (``*_COLUMNS``) and detail views show.

A column's ``drop`` ranks it among those a narrow terminal may leave out (highest first);
ids are ``whole``: never wrapped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.cli.render import Column, excerpt, field, time_field


def _error(row: Mapping[str, Any]) -> object:
    error, message = row.get("error"), row.get("error_message")
    return f"{error}: {message}" if error and message else error or message


def _duration(attempt: Mapping[str, Any]) -> object:
    ms = attempt.get("duration_ms")
    return None if ms is None else round(ms)


def _state(sub: Mapping[str, Any]) -> str:
    if not sub.get("enabled", True):
        reason = sub.get("disabled_reason")
        return f"disabled ({reason})" if reason else "disabled"
    return "paused" if sub.get("paused") else "active"


def _lane(sub: Mapping[str, Any]) -> str | None:
    """What the lane does now: "held until ... because ..." rather than a due time that
    will not be kept."""
    lane = sub.get("lane")
    if not lane:
        return None
    if lane.get("held_until"):
        return f"held until {lane['held_until']} because {lane.get('hold_reason')}"
    return "delivering" if lane.get("backlog") or lane.get("in_flight") else "idle"


def _lane_numbers(sub: Mapping[str, Any]) -> str | None:
    lane = sub.get("lane")
    if not lane:
        return None
    rate = lane.get("recent_failure_rate")
    failing = "no recent attempts" if rate is None else f"{rate:.0%} of recent attempts failed"
    return (f"{lane.get('backlog')} waiting, {lane.get('in_flight')} in flight, breaker "
            f"{lane.get('breaker')}, {failing}")  # fmt: skip


EVENT_COLUMNS: list[Column] = [
    Column("ID", field("id"), whole=True),
    Column("Received", time_field("received_at")),
    Column("Source", field("source"), drop=2),
    Column("Type", field("event_type"), drop=1),
    Column("Bytes", field("body_bytes"), drop=3),
]
EVENT_DETAILS: list[Column] = [
    *EVENT_COLUMNS,
    Column("Content type", field("content_type")),
    Column("Idempotency key", field("idempotency_key")),
    Column("Fanned out", field("fanned_out")),
    Column("Headers", field("headers")),
]
DELIVERY_COLUMNS: list[Column] = [
    Column("ID", field("id"), whole=True),
    Column("Event", field("event_id"), drop=7, whole=True),
    Column("Subscription", field("subscription_id"), drop=6, whole=True),
    Column("Status", field("status")),
    Column("Attempts", field("attempts"), drop=2),
    Column("Last code", field("last_status_code"), drop=1),
    Column("Last error", field("last_error"), drop=4),
    Column("Next attempt", time_field("next_attempt_at"), drop=3),
    Column("Updated", time_field("updated_at"), drop=8),
]
DELIVERY_DETAILS: list[Column] = [
    *DELIVERY_COLUMNS[:5],
    Column("Mode", field("mode")),
    *DELIVERY_COLUMNS[5:],
    Column("Created", time_field("created_at")),
]
ATTEMPT_COLUMNS: list[Column] = [
    Column("#", field("number")),
    Column("Trigger", field("trigger"), drop=4),
    Column("Started", time_field("started_at")),
    Column("Code", field("status_code")),
    Column("Error", _error, drop=2),
    Column("ms", _duration, drop=5),
    Column("Outcome", field("outcome")),
    Column("Next attempt", time_field("next_attempt_at"), drop=1),
    Column("Response", lambda a: excerpt(a.get("response_excerpt")), drop=3),
]
SUBSCRIPTION_COLUMNS: list[Column] = [
    Column("ID", field("id"), whole=True),
    Column("Description", field("description"), drop=5),
    Column("URL", field("url")),
    Column("Sources", field("sources"), drop=3),
    Column("Event types", field("event_types"), drop=4),
    Column("Mode", field("mode"), drop=2),
    Column("State", _state, drop=1),
]
SUBSCRIPTION_DETAILS: list[Column] = [
    *SUBSCRIPTION_COLUMNS,
    Column("Headers", lambda s: sorted(s.get("headers") or {})),
    Column("Timeout (s)", field("timeout_s")),
    Column("Retry", field("retry")),
    Column("Svix headers", field("svix_headers")),
    Column("Filter", field("filter")),
    Column("Transform", field("transform")),
    Column("Created", time_field("created_at")),
    Column("Updated", time_field("updated_at")),
    Column("Old secret until", time_field("previous_secret_expires_at")),
    Column("Lane", _lane),
    Column("Lane load", _lane_numbers),
]
SOURCE_COLUMNS: list[Column] = [
    Column("Name", field("name"), whole=True),
    Column("Description", field("description"), drop=4),
    Column("Verification", lambda s: (s.get("verification") or {}).get("scheme")),
    Column("Secrets", lambda s: (s.get("verification") or {}).get("secret_count"), drop=1),
    Column("Event type header", field("event_type_header"), drop=2),
    Column("Idempotency header", field("idempotency_header"), drop=3),
]
SOURCE_DETAILS: list[Column] = [
    *SOURCE_COLUMNS,
    Column("Verification config", field("verification")),
    Column("Max body bytes", field("max_body_bytes")),
    Column("Created", time_field("created_at")),
    Column("Updated", time_field("updated_at")),
]
