"""Which fields of each API resource the tables (``*_COLUMNS``) and detail views show.

At 80 columns every list keeps what a user came for (an event's source and type, a
delivery's status and last error, a subscription's URL and state): long values are cut
(``shorten``) before any column goes. A column's ``drop`` ranks it among those a narrower
terminal may leave out (highest first); ids are ``whole``: never cut or wrapped. Lists show
times to the second; detail views in full."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.cli.render import Column, excerpt, field, short_time_field, time_field


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
    Column("Received", short_time_field("received_at")),
    Column("Source", field("source"), shorten=6),
    Column("Type", field("event_type"), shorten=8),
    Column("Bytes", field("body_bytes"), drop=1),
]
EVENT_DETAILS: list[Column] = [
    Column("ID", field("id")),
    Column("Received", time_field("received_at")),
    Column("Source", field("source")),
    Column("Type", field("event_type")),
    Column("Bytes", field("body_bytes")),
    Column("Content type", field("content_type")),
    Column("Idempotency key", field("idempotency_key")),
    Column("Fanned out", field("fanned_out")),
    Column("Headers", field("headers")),
]
DELIVERY_COLUMNS: list[Column] = [
    Column("ID", field("id"), whole=True),
    Column("Event", field("event_id"), drop=4, whole=True),
    Column("Subscription", field("subscription_id"), drop=3, whole=True),
    Column("Status", field("status")),
    Column("Tries", field("attempts")),
    Column("Code", field("last_status_code")),
    Column("Last error", field("last_error"), shorten=10),
    Column("Next attempt", short_time_field("next_attempt_at"), drop=2),
    Column("Updated", short_time_field("updated_at"), drop=5),
]
DELIVERY_DETAILS: list[Column] = [
    Column("ID", field("id")),
    Column("Event", field("event_id")),
    Column("Subscription", field("subscription_id")),
    Column("Status", field("status")),
    Column("Attempts", field("attempts")),
    Column("Mode", field("mode")),
    Column("Last code", field("last_status_code")),
    Column("Last error", field("last_error")),
    Column("Next attempt", time_field("next_attempt_at")),
    Column("Updated", time_field("updated_at")),
    Column("Created", time_field("created_at")),
]
NOT_DELIVERED_COLUMNS: list[Column] = [
    Column("Subscription", field("subscription_id"), whole=True),
    Column("Reason", field("reason")),
    Column("Detail", field("detail"), drop=2),
    Column("Decided", field("decided"), drop=1),
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
    Column("Description", field("description"), drop=1, shorten=11),
    Column("URL", field("url"), shorten=16),
    Column("Sources", field("sources"), drop=2, shorten=7),
    Column("Event types", field("event_types"), drop=3, shorten=11),
    Column("Mode", field("mode"), drop=4),
    Column("State", _state, shorten=6),
]
SUBSCRIPTION_DETAILS: list[Column] = [
    Column("ID", field("id")),
    Column("Description", field("description")),
    Column("URL", field("url")),
    Column("Sources", field("sources")),
    Column("Event types", field("event_types")),
    Column("Mode", field("mode")),
    Column("State", _state),
    Column("Headers", lambda s: sorted(s.get("headers") or {})),
    Column("Timeout (s)", field("timeout_s")),
    Column("Retry", field("retry")),
    Column("Rate limit (/s)", field("rate_limit")),
    Column("Max concurrency", field("max_concurrency")),
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
