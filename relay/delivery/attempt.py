"""One delivery attempt, start to finish: claim, call, classify, record, log.

Both the ARQ delivery job and the API's best-effort fan-out make attempts through
:class:`Attempter`, so every attempt is recorded and logged the same way whoever makes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote, urlsplit

import structlog
from redis.exceptions import OutOfMemoryError
from structlog.contextvars import bound_contextvars

from config.settings import Settings
from relay.delivery import outbound
from relay.delivery.connection import UNAVAILABLE
from relay.delivery.fanout import SubscriptionCache
from relay.delivery.ops import publish
from relay.delivery.tail import TailGate
from relay.domain import breaker, failing, ops, transforms
from relay.domain.clock import now_ms
from relay.domain.filters import EventFacts
from relay.domain.models import (
    TEST_SOURCE,
    Attempt,
    DeliveryMode,
    DeliveryStatus,
    Event,
    Subscription,
    Trigger,
    UnusableSubscription,
)
from relay.domain.outcome import AttemptResult
from relay.domain.retry_policy import RetryPolicy, merged
from relay.domain.signing import signed_headers
from relay.domain.transforms import TransformFailed
from relay.domain.transitions import after_attempt
from relay.observability import metrics, tracing
from relay.observability.tracing import AttemptTrace
from relay.storage import AlreadyRecorded, DeliveryContext, OpsContext, Store
from relay.storage.deliveries import Recorded

log = structlog.get_logger("relay.delivery")

_VISIBLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")

# Bodies up to this size are transformed on the event loop (tens of microseconds).
_TRANSFORM_INLINE_BYTES = 64 * 1024

_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})

# A claim outlives the HTTP deadline by this much, so a slow but live attempt keeps it.
LEASE_MARGIN_S = 5.0
# While Redis is full, an attempt tries to record its outcome this often.
_RECORD_RETRY_S = 0.5


class Policies:
    """Retry policies built once per distinct subscription configuration."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._default = RetryPolicy.from_settings(settings.retry)
        self._best_effort = RetryPolicy.single_attempt()
        self._custom: dict[tuple[str, int], RetryPolicy] = {}

    def for_delivery(self, mode: DeliveryMode, sub: Subscription) -> RetryPolicy:
        if mode is DeliveryMode.BEST_EFFORT:
            return self._best_effort
        if sub.retry is None:
            return self._default
        key = (sub.id, sub.updated_at)
        if key not in self._custom:
            if len(self._custom) > 10_000:
                self._custom.clear()
            override = sub.retry.model_dump(exclude_none=True)
            # No schedule may outlive the events it delivers (see Settings' own check).
            longest = self._settings.retention_ms / 1000 * 0.9
            if override.get("max_age_s", 0) > longest:
                override["max_age_s"] = longest
            self._custom[key] = RetryPolicy.from_settings(merged(self._settings.retry, override))
        return self._custom[key]


def _not_sent(sub: Subscription | UnusableSubscription | None) -> AttemptResult:
    """Why no request goes to this subscription."""
    if sub is None:
        return AttemptResult(error="SubscriptionDeleted", error_message="no request was sent")
    if isinstance(sub, UnusableSubscription):
        # Named in the delivery's record, so the dead letter says what to repair.
        return AttemptResult(error="UnusableSubscription", error_message=sub.problem[:500])
    return AttemptResult(error="SubscriptionDisabled", error_message="no request was sent")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The request one attempt sends."""

    body: bytes
    headers: dict[str, str]


def outgoing(
    sub: Subscription, event: Event, body: bytes, attempt: int, now_ms: int, max_bytes: int
) -> Outgoing:
    """The body and headers of one attempt: the event's body, or what the subscription's
    transform makes of it, signed (Standard Webhooks) with this attempt's time. Raises
    :class:`TransformFailed` when the transform cannot shape this event."""
    content_type = event.content_type or "application/octet-stream"
    headers = dict(sub.headers)
    if sub.transform is not None:
        facts = EventFacts(event.headers, body, event_id=event.id, source=event.source,
                           event_type=event.event_type)  # fmt: skip
        shaped = transforms.apply(sub.transform, facts, max_bytes=max_bytes)
        body, content_type = shaped.body, shaped.content_type or content_type
        templated = {name.lower() for name in shaped.headers}
        headers = {k: v for k, v in headers.items() if k.lower() not in templated}
        headers.update(shaped.headers)
    signing = sub.signing_secrets(now_ms)
    signed = signed_headers(signing, event.id, now_ms // 1000, body, svix_names=sub.svix_headers)
    headers.update(signed)
    headers.update(
        {
            "content-type": content_type,
            "x-relay-source": event.source,
            "x-relay-attempt": str(attempt),
        }
    )
    if event.event_type:
        # Event types come from providers' headers and JSON; a header must be ASCII.
        headers["x-relay-event-type"] = quote(event.event_type, safe=_VISIBLE_ASCII)
    return Outgoing(body, headers)


class Attempter:
    def __init__(self, store: Store, sender: outbound.Sender, settings: Settings) -> None:
        self.store = store
        self.sender = sender
        self.settings = settings
        self.policies = Policies(settings)
        # Operational events are fanned out by whoever wrote them, at once.
        self._ops_subscriptions = SubscriptionCache(store)
        self.tail = TailGate(store)

    def _timeout_s(self, mode: DeliveryMode, sub: Subscription) -> float:
        limit = (
            self.settings.best_effort_timeout_s
            if mode is DeliveryMode.BEST_EFFORT
            else self.settings.delivery_timeout_s
        )
        return min(sub.timeout_s or limit, limit)

    def lease_ms(self, mode: DeliveryMode) -> int:
        """How long a claim on one attempt lasts: the HTTP deadline and a margin, so a slow
        but live attempt keeps it."""
        deadline = (
            self.settings.best_effort_timeout_s
            if mode is DeliveryMode.BEST_EFFORT
            else self.settings.delivery_timeout_s
        )
        return int((deadline + LEASE_MARGIN_S) * 1000)

    async def attempt_all(self, contexts: Sequence[DeliveryContext]) -> None:
        """Attempt deliveries fan-out just put in flight for this process, side by side, so
        a slow receiver does not hold up the event's other subscribers."""
        await asyncio.gather(*(self.attempt(ctx) for ctx in contexts))

    async def attempt(self, ctx: DeliveryContext, trigger: Trigger | None = None) -> Attempt | None:
        """Make the next attempt of a claimed delivery and record it; None when another run
        recorded that attempt first."""
        attempt = ctx.delivery.attempts + 1
        trigger = trigger or ctx.trigger
        started_ms = now_ms()
        # Every line logged while this attempt runs names the delivery it concerns.
        with (
            bound_contextvars(
                delivery_id=ctx.delivery.id,
                subscription_id=ctx.delivery.subscription_id,
                event_id=ctx.event.id,
            ),
            tracing.active().attempt(ctx.event, ctx.delivery, attempt) as trace,
        ):
            try:
                return await self._call(ctx, attempt, trigger, started_ms, trace)
            except UNAVAILABLE:
                # Redis is away, not the receiver at fault: recording a failure now would
                # misreport what the receiver answered. The claim's lease runs out and the
                # delivery is attempted again (same webhook-id).
                raise
            except Exception as exc:
                # A bug or a surprise from the receiver must still end in a recorded attempt;
                # otherwise the claim would expire and the same failure repeat forever.
                log.exception("delivery.attempt_error", attempt=attempt)
                result = AttemptResult(
                    error=exc.__class__.__name__,
                    error_message="internal error; see the logs",
                    reached=False,
                )
                return await self._finish(ctx, attempt, trigger, started_ms, result)

    async def record(
        self, ctx: DeliveryContext, result: AttemptResult, started_ms: int, *, give_up: bool = False
    ) -> Attempt | None:
        """Record the next attempt of a claimed delivery made elsewhere (by a `relay listen`
        client): the same decision, record and log as an attempt made here."""
        with bound_contextvars(
            delivery_id=ctx.delivery.id,
            subscription_id=ctx.delivery.subscription_id,
            event_id=ctx.event.id,
        ):
            attempt = ctx.delivery.attempts + 1
            return await self._finish(ctx, attempt, ctx.trigger, started_ms, result, give_up)

    async def _call(
        self,
        ctx: DeliveryContext,
        attempt: int,
        trigger: Trigger,
        started_ms: int,
        trace: AttemptTrace,
    ) -> Attempt | None:
        sub = ctx.subscription
        if sub is None or isinstance(sub, UnusableSubscription) or not sub.enabled:
            result = _not_sent(sub)
            return await self._finish(ctx, attempt, trigger, started_ms, result, give_up=True)

        shape = partial(outgoing, sub, ctx.event, ctx.body, attempt, started_ms,
                        self.settings.max_body_bytes)  # fmt: skip
        try:
            # A transform over a large body is milliseconds to a second of Python: off the
            # loop, so the attempts in flight beside it keep going.
            big = sub.transform is not None and len(ctx.body) > _TRANSFORM_INLINE_BYTES
            request = await asyncio.to_thread(shape) if big else shape()
        except TransformFailed as exc:
            # The same event and transform fail the same way on every try: no retry.
            result = AttemptResult(error="TransformFailed", error_message=str(exc))
            return await self._finish(ctx, attempt, trigger, started_ms, result, give_up=True)
        url = str(sub.url)
        if trace.outgoing:
            # Outside the signature (Standard Webhooks signs id, timestamp and body): a
            # hop's trace context, as W3C Trace Context means it to be. It replaces one the
            # subscription's own headers name, in whatever case.
            for name in [n for n in request.headers if n.lower() in _TRACE_HEADERS]:
                del request.headers[name]
            request.headers.update(trace.outgoing)
        trace.sending(url)
        result = await outbound.post(
            self.sender,
            url,
            request.body,
            request.headers,
            timeout_s=self._timeout_s(ctx.delivery.mode, sub),
            excerpt_bytes=self.settings.response_excerpt_bytes,
        )
        trace.answered(result)
        return await self._finish(ctx, attempt, trigger, started_ms, result)

    async def _finish(
        self,
        ctx: DeliveryContext,
        attempt: int,
        trigger: Trigger,
        started_ms: int,
        result: AttemptResult,
        give_up: bool = False,
    ) -> Attempt | None:
        finished_ms = now_ms()
        sub = ctx.subscription
        policy = (
            self.policies.for_delivery(ctx.delivery.mode, sub)
            if isinstance(sub, Subscription) and not give_up
            else None
        )

        def next_delay() -> float | None:
            assert policy is not None
            # The policy counts from the first attempt, or from the last manual replay.
            window = ctx.window
            return policy.next_delay(
                attempt - window.base_attempts,
                (finished_ms - (window.started_at or started_ms)) / 1000,
                result.retry_after_s,
            )

        moved = after_attempt(result, None if policy is None else next_delay)
        retry_in = moved.retry_in
        next_at = None if retry_in is None else finished_ms + int(retry_in * 1000)
        record = Attempt(
            number=attempt,
            trigger=trigger,
            started_at=started_ms,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
            error_message=result.error_message,
            response_excerpt=result.response_excerpt,
            outcome=moved.status,
            next_attempt_at=next_at,
            transform_version=(
                sub.transform.version if isinstance(sub, Subscription) and sub.transform else None
            ),
        )
        own_test = ctx.event.source == TEST_SOURCE
        limit_ms = int(self.settings.disable_after_failing_s * 1000)
        clock = failing.judge(
            succeeded=moved.status is DeliveryStatus.SUCCEEDED,
            # Only requests that reached the subscriber count towards disabling it.
            counts=result.reached and not give_up and not own_test,
            clock_ms=ctx.failing_since,
            now_ms=finished_ms,
            limit_ms=limit_ms,
        )
        lane = breaker.NOTHING
        if policy is not None and not own_test:
            lane = breaker.decide(ctx.breaker, result, now_ms=finished_ms,
                                  max_wait_s=policy.max_wait_s)  # fmt: skip
        may_report = (
            moved.status is DeliveryStatus.DEAD or moved.disable_subscription or clock.disable
        )

        async def record_it() -> Recorded:
            return await self.store.deliveries.record(
                ctx, record, now_ms=finished_ms,
                disable_reason="410 Gone from the receiver" if moved.disable_subscription else None,
                # A failed subscription test is an answer, not a dead letter to replay later.
                dead_letter=not own_test,
                failing=clock, failing_limit_ms=limit_ms,
                failing_reason=failing.describe(limit_ms),
                lane=lane,
                ops=self._ops_context(ctx, finished_ms) if may_report and not give_up else None,
            )  # fmt: skip

        try:
            recorded = await self._record_while_full(record_it, ctx.delivery.mode)
        except AlreadyRecorded:
            log.warning("delivery.record_conflict", attempt=attempt)
            return None
        disabled = recorded.disabled
        if lane.transition:
            log.warning(f"lane.breaker_{'opened' if lane.transition == 'open' else 'closed'}",
                        subscription_id=ctx.delivery.subscription_id,
                        reason=lane.hold_reason or None, trips=lane.trips)  # fmt: skip
        if recorded.ops_events:
            await publish(self.store, self._ops_subscriptions, recorded.ops_events)
        self._log(ctx, record, result, retry_in, disabled)
        metrics.observe_attempt(
            record.outcome, result.status_code, result.duration_ms, ctx.event.received_at,
            finished_ms, disabled=disabled is not None,
        )  # fmt: skip
        await self.tail.attempt(ctx, record)
        return record

    async def _record_while_full(
        self, record_it: Callable[[], Awaitable[Recorded]], mode: DeliveryMode
    ) -> Recorded:
        """Record an attempt, waiting while Redis is full (it refuses the script before it
        runs, so trying again is safe) for as long as the claim's lease: an outcome recorded
        once memory returns is not sent again. Past that the error goes up, the claim runs
        out and the delivery is attempted again (same webhook-id). A connection outage is
        retried by the connection itself (relay.delivery.connection)."""
        give_up = time.monotonic() + self.lease_ms(mode) / 1000
        while True:
            try:
                return await record_it()
            except OutOfMemoryError:
                if time.monotonic() + _RECORD_RETRY_S >= give_up:
                    raise
                await asyncio.sleep(_RECORD_RETRY_S)

    def _ops_context(self, ctx: DeliveryContext, now: int) -> OpsContext | None:
        """Room for the two events an attempt may report (its delivery died, it disabled
        the subscription); none for the relay's own tests and for operational deliveries,
        whose failures are only logged, so no event can be about another."""
        if not ops.emits_ops(ctx.event.source):
            return None
        types = (ops.DELIVERY_DEAD, ops.SUBSCRIPTION_DISABLED)  # as record_attempt.lua numbers them
        return OpsContext.make(ops.OPS_SOURCE, types, now, self.settings.retention_ms)

    def _log(
        self,
        ctx: DeliveryContext,
        record: Attempt,
        result: AttemptResult,
        retry_in: float | None,
        disabled: str | None,
    ) -> None:
        sub = ctx.subscription
        fields = {
            "event_id": ctx.event.id,
            "delivery_id": ctx.delivery.id,
            "subscription_id": ctx.delivery.subscription_id,
            "source": ctx.event.source,
            "event_type": ctx.event.event_type,
            "url_host": urlsplit(str(sub.url)).hostname if sub and sub.url else None,
            "attempt": record.number,
            "trigger": record.trigger.value,
            "status_code": result.status_code,
            "duration_ms": result.duration_ms,
        }
        if result.error:
            fields["error"] = f"{result.error}: {result.error_message}"
        if record.outcome is DeliveryStatus.SUCCEEDED:
            fields["latency_ms"] = now_ms() - ctx.event.received_at
            log.info("delivery.succeeded", **fields)
        elif record.outcome is DeliveryStatus.FAILED:
            log.warning(
                "delivery.retry_scheduled", next_attempt_in_s=round(retry_in or 0, 3), **fields
            )
        else:
            log.error("delivery.dead", **fields)
        if disabled:
            log.warning(
                "subscription.disabled",
                subscription_id=ctx.delivery.subscription_id,
                reason=disabled,
                event_id=ctx.event.id,
                delivery_id=ctx.delivery.id,
            )
