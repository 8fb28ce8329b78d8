"""Preview: what a subscription would do with an event, before anything is saved or sent.

It answers whether the event matches (and, if not, which condition failed) and the body and
headers a delivery would carry, computed by the same code an attempt runs
(:func:`relay.delivery.attempt.outgoing`). Nothing is stored and no request is made;
signatures, which depend on the moment of sending, are not computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from relay.delivery.attempt import outgoing
from relay.domain.clock import now_ms
from relay.domain.filters import EventFacts, Filter
from relay.domain.matching import ANY_SOURCE, event_type_matches
from relay.domain.models import Event, Subscription, shown_headers
from relay.domain.redaction import REDACTED, looks_secret
from relay.domain.signing import generate_secret
from relay.domain.transforms import Transform, TransformFailed
from relay.storage import Store

# Header values a preview does not show: they are computed at each attempt.
SIGNED_AT_SEND = "(signed when sent)"
_PER_ATTEMPT = ("webhook-timestamp", "webhook-signature", "svix-timestamp", "svix-signature")


class UnknownEvent(LookupError):
    """No stored event has this id."""


@dataclass(frozen=True, slots=True)
class Sample:
    """An event to try: a stored one (``event_id``), or one given inline."""

    body: bytes = b""
    headers: dict[str, str] | None = None
    content_type: str = "application/json"
    source: str | None = None
    event_type: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Preview:
    matched: bool
    failed: str | None  # the condition that did not hold
    body: bytes | None  # what would be sent (None: nothing would be)
    headers: dict[str, str] | None
    transform_version: str | None
    error: str | None  # why a delivery of it would die (a transform that failed)


def _scope_failure(sub: Subscription, event: Event, stored: bool) -> str | None:
    """Why the subscription would not take the event for its source or type, if so. A
    sample is checked only on what it names."""
    if not sub.enabled:
        return "the subscription is disabled"
    source_given = stored or bool(event.source)
    if source_given and event.source not in sub.sources and ANY_SOURCE not in sub.sources:
        return f"source {event.source!r} is not in sources"
    type_given = stored or event.event_type is not None
    if type_given and not event_type_matches(sub.event_types, event.event_type):
        return f"event type {event.event_type!r} matches none of event_types"
    return None


def preview(
    sub: Subscription, event: Event, body: bytes, settings: Settings, *, stored: bool
) -> Preview:
    """What ``sub`` would do with this event (pure apart from the clock)."""
    failed = _scope_failure(sub, event, stored)
    if failed is None and sub.filter is not None:
        failed = sub.filter.check(EventFacts(event.headers, body))
    version = sub.transform.version if sub.transform else None
    if failed is not None:
        return Preview(False, failed, None, None, version, None)
    try:
        request = outgoing(sub, event, body, 1, now_ms(), settings.max_body_bytes)
    except TransformFailed as exc:
        return Preview(True, None, None, None, version, f"TransformFailed: {exc}")
    # The subscription's own headers as answers show them (write-only unless public), and
    # any other credential-like one masked.
    extra = {name.lower() for name in sub.headers}
    own = {k: v for k, v in request.headers.items() if k.lower() in extra}
    headers = {
        k: REDACTED if looks_secret(k) else v
        for k, v in request.headers.items()
        if k.lower() not in extra
    } | shown_headers(own, sub.public_headers)
    for name in _PER_ATTEMPT:
        if name in headers:
            headers[name] = SIGNED_AT_SEND
    return Preview(True, None, request.body, headers, version, None)


class Previews:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    async def _event(self, sample: Sample) -> tuple[Event, bytes, bool]:
        """The event and its body; True when it is a stored one."""
        if sample.event_id is not None:
            event = await self._store.events.get(sample.event_id)
            found = await self._store.events.body(sample.event_id)
            if event is None or found is None:
                raise UnknownEvent(sample.event_id)
            return event, found[0], True
        # As ingest keeps it: only the stored headers, so the preview sees what fan-out will.
        given = {k.lower(): v for k, v in (sample.headers or {}).items()}
        stored = {h: given[h] for h in self._settings.stored_headers if h in given}
        event = Event(
            id="evt_preview", source=sample.source or "", event_type=sample.event_type,
            received_at=now_ms(), content_type=sample.content_type, headers=stored,
            idempotency_key=None, body_bytes=len(sample.body), fanned_out=True,
        )  # fmt: skip
        return event, sample.body, False

    async def of_subscription(self, sub: Subscription, sample: Sample) -> Preview:
        event, body, stored = await self._event(sample)
        return preview(sub, event, body, self._settings, stored=stored)

    async def inline(
        self, filter_: Filter | None, transform: Transform | None, sample: Sample
    ) -> Preview:
        """A filter and transform not saved anywhere, as a subscription to every source
        and type would apply them."""
        now = now_ms()
        sub = Subscription(
            id="sub_preview", url="https://preview.invalid/", sources=[ANY_SOURCE],
            secret=generate_secret(), created_at=now, updated_at=now, filter=filter_,
            transform=transform,
        )  # fmt: skip
        event, body, _ = await self._event(sample)
        return preview(sub, event, body, self._settings, stored=False)
