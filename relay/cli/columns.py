"""Which fields of each API resource the tables (``*_COLUMNS``) and detail views show."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.cli.render import Column, excerpt, field, time_field


def _error(row: Mapping[str, Any]) -> object:
    error, message = row.get("error"), row.get("error_message")
    return f"{error}: {message}" if error and message else error or message


def _state(sub: Mapping[str, Any]) -> str:
    if not sub.get("enabled", True):
        reason = sub.get("disabled_reason")
        return f"disabled ({reason})" if reason else "disabled"
    return "paused" if sub.get("paused") else "active"


EVENT_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("Received", time_field("received_at")),
    ("Source", field("source")),
    ("Type", field("event_type")),
    ("Bytes", field("body_bytes")),
]
EVENT_DETAILS: list[Column] = [
    *EVENT_COLUMNS,
    ("Content type", field("content_type")),
    ("Idempotency key", field("idempotency_key")),
    ("Fanned out", field("fanned_out")),
    ("Headers", field("headers")),
]
DELIVERY_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("Event", field("event_id")),
    ("Subscription", field("subscription_id")),
    ("Status", field("status")),
    ("Attempts", field("attempts")),
    ("Last code", field("last_status_code")),
    ("Last error", field("last_error")),
    ("Next attempt", time_field("next_attempt_at")),
    ("Updated", time_field("updated_at")),
]
DELIVERY_DETAILS: list[Column] = [
    *DELIVERY_COLUMNS[:5],
    ("Mode", field("mode")),
    *DELIVERY_COLUMNS[5:],
    ("Created", time_field("created_at")),
]
ATTEMPT_COLUMNS: list[Column] = [
    ("#", field("number")),
    ("Trigger", field("trigger")),
    ("Started", time_field("started_at")),
    ("Code", field("status_code")),
    ("Error", _error),
    ("ms", lambda a: round(a["duration_ms"]) if a.get("duration_ms") is not None else None),
    ("Outcome", field("outcome")),
    ("Next attempt", time_field("next_attempt_at")),
    ("Response", lambda a: excerpt(a.get("response_excerpt"))),
]
SUBSCRIPTION_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("Description", field("description")),
    ("URL", field("url")),
    ("Sources", field("sources")),
    ("Event types", field("event_types")),
    ("Mode", field("mode")),
    ("State", _state),
]
SUBSCRIPTION_DETAILS: list[Column] = [
    *SUBSCRIPTION_COLUMNS,
    ("Headers", lambda s: sorted(s.get("headers") or {})),
    ("Timeout (s)", field("timeout_s")),
    ("Retry", field("retry")),
    ("Svix headers", field("svix_headers")),
    ("Filter", field("filter")),
    ("Transform", field("transform")),
    ("Created", time_field("created_at")),
    ("Updated", time_field("updated_at")),
    ("Old secret until", time_field("previous_secret_expires_at")),
]
SOURCE_COLUMNS: list[Column] = [
    ("Name", field("name")),
    ("Description", field("description")),
    ("Verification", lambda s: (s.get("verification") or {}).get("scheme")),
    ("Secrets", lambda s: (s.get("verification") or {}).get("secret_count")),
    ("Event type header", field("event_type_header")),
    ("Idempotency header", field("idempotency_header")),
]
SOURCE_DETAILS: list[Column] = [
    *SOURCE_COLUMNS,
    ("Verification config", field("verification")),
    ("Created", time_field("created_at")),
    ("Updated", time_field("updated_at")),
]
