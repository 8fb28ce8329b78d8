"""`relay listen`: a subscription whose lane is drained through a stream the CLI opened.

A listener is an ordinary subscription (its URL is the laptop's forward URL, for the
record), kept paused for the workers: deliveries fan out to it and wait in its lane like
any other's, and no worker sends them. The API process holding the listener's stream drains
the lane instead, through the same claim script (its job id ``listen:<sub>`` may claim the
paused lane), with the same leases: each claimed delivery goes down the stream as the
signed request the worker would have sent, the CLI POSTs it to the local app and reports
the answer, and that answer is recorded by :meth:`Attempter.record` (retries, backoff and
dead letters as usual).

At least once, whatever dies: a delivery claimed when the stream drops, the CLI dies or
this process dies stays claimed until its lease runs out, then is due again; a stream
(re)opened later claims it. A listener whose stream has been gone longer than
``RELAY_LISTEN_GRACE_S`` is deleted by :func:`sweep` (the recovery cron), which closes what
waits in its lane as for any deleted subscription.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson
import structlog

from config.settings import Settings
from relay.delivery.attempt import LEASE_MARGIN_S, Attempter, outgoing
from relay.delivery.fanout import UnknownSubscription
from relay.delivery.subscriptions import Saved, Subscriptions
from relay.domain import lane_limits
from relay.domain.clock import now_ms
from relay.domain.models import DeliveryStatus, Subscription, SubscriptionIn, SubscriptionPatch
from relay.domain.outcome import AttemptResult
from relay.domain.transforms import TransformFailed
from relay.storage import DeliveryContext, Store

log = structlog.get_logger("relay.listen")

JOB_PREFIX = "listen:"  # claim_lane.lua lets this job id claim a listener's paused lane
# How often an idle stream looks for due deliveries, and says it is alive.
_POLL_S = 0.2
_BEAT_S = 5.0
# A comment line this often keeps proxies from closing an idle stream.
_KEEPALIVE_S = 15.0
# How often a stream waiting for a report looks for one another API process took.
_ELSEWHERE_S = 0.1
# The CLI's own hops (stream, report) on top of its request to the local app.
_REPORT_MARGIN_S = 5.0


class NotAListener(LookupError):
    """No `relay listen` subscription has this id."""


class NotWaiting(LookupError):
    """This process is not waiting for that delivery's answer (the stream that sent it is
    gone, or the answer came too late): it will be sent again."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One message down a listener's stream: ``hello``, ``delivery`` or ``gone``; or a
    keep-alive (``kind`` empty)."""

    kind: str
    data: dict[str, Any]


KEEPALIVE = Frame("", {})


class Listeners:
    def __init__(
        self, store: Store, attempter: Attempter, subscriptions: Subscriptions, settings: Settings
    ) -> None:
        self._store = store
        self._attempter = attempter
        self._subscriptions = subscriptions
        self._settings = settings
        # delivery id -> its listener, and the answer its stream waits for
        self._waiting: dict[str, tuple[str, asyncio.Future[AttemptResult]]] = {}

    @property
    def timeout_s(self) -> float:
        """How long the CLI gives the local app."""
        return self._settings.delivery_timeout_s

    async def create(self, source: str, event_types: list[str], forward_url: str) -> Saved:
        """A new listener on ``source``. Made disabled, registered, paused, then enabled:
        at no step can a worker send one of its deliveries itself."""
        spec = SubscriptionIn.model_validate(
            {
                "url": forward_url,
                "sources": [source],
                "event_types": event_types,
                "enabled": False,
                "description": f"relay listen -> {forward_url}",
            }
        )
        saved = await self._subscriptions.create(spec, called_by_relay=False)
        sub_id = saved.subscription.id
        await self._store.listeners.seen(sub_id, now_ms())
        await self._subscriptions.set_paused(sub_id, True)
        enabled = await self._subscriptions.update(sub_id, SubscriptionPatch(enabled=True))
        log.info("listen.created", subscription_id=sub_id, source=source)
        return Saved(enabled.subscription, saved.warnings)

    async def _listener(self, sub_id: str) -> Subscription:
        if await self._store.listeners.last_seen(sub_id) is None:
            raise NotAListener(sub_id)
        try:
            return await self._subscriptions.get(sub_id)
        except UnknownSubscription:
            raise NotAListener(sub_id) from None

    async def delete(self, sub_id: str) -> None:
        await self._listener(sub_id)
        await remove(self._store, sub_id)

    async def report(self, sub_id: str, delivery_id: str, result: AttemptResult) -> None:
        """The local app's answer to a delivery sent down a stream: handed to the stream
        waiting for it here, or left in Redis for the API process holding that stream
        (``relay serve --workers N``: the report may reach another process)."""
        listener, answer = self._waiting.get(delivery_id, ("", None))
        if answer is not None and listener == sub_id:
            if answer.done():
                raise NotWaiting(delivery_id)
            answer.set_result(result)
            return
        delivery = await self._store.deliveries.get(delivery_id)
        if (
            delivery is None
            or delivery.subscription_id != sub_id
            or delivery.status is not DeliveryStatus.DELIVERING
        ):
            raise NotWaiting(delivery_id)
        ttl_ms = int((self.timeout_s + _REPORT_MARGIN_S + LEASE_MARGIN_S) * 1000)
        await self._store.listeners.answer(delivery_id, orjson.dumps(asdict(result)), ttl_ms)

    async def stream(self, sub_id: str) -> AsyncGenerator[Frame]:
        """The frames of one listener's stream, until the subscription is gone. The caller
        stops iterating (closes the generator) when the client leaves."""
        sub = await self._listener(sub_id)
        now = now_ms()
        await self._store.listeners.seen(sub_id, now)
        job_id = JOB_PREFIX + sub_id
        holder = JOB_PREFIX + secrets.token_hex(4)
        wait_s = self.timeout_s + _REPORT_MARGIN_S
        lease_ms = int((wait_s + LEASE_MARGIN_S) * 1000)
        # One at a time below; the rate limit a subscription sets still applies.
        limits = lane_limits.resolve(
            sub, default_concurrency=self._settings.max_concurrency_per_subscription
        )
        # Alive well within the grace period, however short it is set.
        beat_s = min(_BEAT_S, self._settings.listen_grace_s / 3)
        hello = {"subscription_id": sub_id, "sources": sub.sources,
                 "event_types": sub.event_types, "timeout_s": self.timeout_s}  # fmt: skip
        yield Frame("hello", hello)
        log.info("listen.connected", subscription_id=sub_id)
        loop = asyncio.get_running_loop()
        beat = quiet = loop.time()
        try:
            while True:
                now = now_ms()
                if loop.time() - beat >= beat_s:
                    beat = loop.time()
                    await self._store.listeners.seen(sub_id, now)
                # One at a time: the laptop's app sees deliveries in the order they fall due.
                claim = await self._store.lanes.claim(
                    sub_id, 1, now, now + lease_ms, limits, job_id=job_id, worker_id=holder
                )
                for ctx in claim.contexts:
                    async for frame in self._deliver(ctx, wait_s):
                        yield frame
                    quiet = loop.time()
                if claim.subscription is None:
                    # Removed: what this claim took was closed above, the rest by a worker.
                    yield Frame("gone", {"subscription_id": sub_id})
                    return
                if claim.contexts:
                    continue
                if loop.time() - quiet >= _KEEPALIVE_S:
                    quiet = loop.time()
                    yield KEEPALIVE
                await asyncio.sleep(_POLL_S)
        finally:
            log.info("listen.disconnected", subscription_id=sub_id)

    async def _deliver(self, ctx: DeliveryContext, wait_s: float) -> AsyncIterator[Frame]:
        sub = ctx.subscription
        started = now_ms()
        attempt = ctx.delivery.attempts + 1
        if not isinstance(sub, Subscription) or not sub.enabled:
            # Deleted or disabled meanwhile: closed without a request, as a worker would.
            await self._attempter.attempt(ctx)
            return
        try:
            request = outgoing(sub, ctx.event, ctx.body, attempt, started,
                               self._settings.max_body_bytes)  # fmt: skip
        except TransformFailed as exc:
            result = AttemptResult(error="TransformFailed", error_message=str(exc))
            await self._attempter.record(ctx, result, started, give_up=True)
            return
        answer: asyncio.Future[AttemptResult] = asyncio.get_running_loop().create_future()
        self._waiting[ctx.delivery.id] = (ctx.delivery.subscription_id, answer)
        try:
            yield Frame(
                "delivery",
                {
                    "delivery_id": ctx.delivery.id,
                    "event_id": ctx.event.id,
                    "event_type": ctx.event.event_type,
                    "attempt": attempt,
                    "headers": request.headers,
                    "body": base64.b64encode(request.body).decode(),
                },
            )
            result = await self._answer(ctx.delivery.id, answer, wait_s)
        finally:
            # A stream closed while waiting leaves the claim to run out: due again then.
            self._waiting.pop(ctx.delivery.id, None)
        excerpt = result.response_excerpt[: self._settings.response_excerpt_bytes]
        await self._attempter.record(ctx, replace(result, response_excerpt=excerpt), started)

    async def _answer(
        self, delivery_id: str, answer: asyncio.Future[AttemptResult], wait_s: float
    ) -> AttemptResult:
        """The report, from this process or (looked for every so often) another one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            left = deadline - loop.time()
            done, _ = await asyncio.wait({answer}, timeout=min(_ELSEWHERE_S, left))
            if done:
                return answer.result()
            if (raw := await self._store.listeners.take_answer(delivery_id)) is not None:
                return AttemptResult(**orjson.loads(raw))
        return AttemptResult(
            error="ListenerTimeout",
            error_message=f"relay listen reported no answer in {wait_s:g} s",
            duration_ms=wait_s * 1000,
        )


async def remove(store: Store, sub_id: str) -> None:
    """Delete a listener's subscription (its lane's deliveries are closed) and forget it."""
    sub = await store.subscriptions.get(sub_id)
    if sub is not None:
        await store.subscriptions.delete(sub, now_ms())
    await store.listeners.forget(sub_id)
    log.info("listen.removed", subscription_id=sub_id)


async def sweep(store: Store, settings: Settings, now: int) -> list[str]:
    """Remove the listeners whose stream has been gone past the grace period."""
    gone = await store.listeners.silent_since(now - int(settings.listen_grace_s * 1000))
    for sub_id in gone:
        try:
            await remove(store, sub_id)
        except Exception:
            # One that cannot be removed now is tried again on the next sweep.
            log.exception("listen.remove_failed", subscription_id=sub_id)
    return gone
