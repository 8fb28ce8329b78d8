"""The dashboard's routes: parse, call a use case, render a template.

Pages are server-rendered with Jinja2, autoescaped: event bodies, headers, response excerpts
and descriptions come from outside and can only ever show as text. The Content-Security-Policy
forbids inline script, so even a tag that slipped through could not run.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import BeforeValidator, TypeAdapter, ValidationError

from relay.api import inspect, scope
from relay.api.auth import audited
from relay.api.deps import ServicesDep, known_subscription
from relay.api.listing import Moment, to_ms
from relay.api.problems import Problem, invalid
from relay.delivery.fanout import UnknownSubscription
from relay.delivery.replay import DeadLetters, InFlight, UnknownDelivery
from relay.delivery.subscriptions import InvalidSubscription
from relay.domain.access import Access, Role
from relay.domain.clock import now_ms
from relay.domain.models import DeliveryStatus, SubscriptionPatch
from relay.storage import NotFannedOut
from relay.ui import chart, format, views
from relay.ui.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    ActionForm,
    OperatorAction,
    Session,
    SessionDep,
    form_data,
    sign_in,
    sign_out,
)

# 'self' only: no inline script, no eval, nothing from elsewhere (the relay must work
# offline), and no page may frame the dashboard (clickjacking on its buttons).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Pages show secrets once (rotate) and data an SRE should not leave in a shared cache.
    "cache-control": "no-store",
}
log = structlog.get_logger("relay.ui")
PAGE_SIZE = 50
# Dead letters re-queued per request of a bulk replay: each answer shows the progress.
REPLAY_BATCH = 200


class SecureRoute(APIRoute):
    """Every dashboard answer carries the security headers, whatever it is; a refusal is a
    page for a person at a browser, and problem+json for anything else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # Actions (POSTs) log an audit line, as the API's writes do.
        handler = audited(f"ui.{self.name}", super().get_route_handler())

        async def secured(request: Request) -> Response:
            try:
                response = await handler(request)
            except (Problem, RequestValidationError) as exc:
                if not _wants_a_page(request):
                    raise
                problem = exc if isinstance(exc, Problem) else invalid(exc)
                response = render("error.html", None, problem.status, problem=problem)
            response.headers.update(SECURITY_HEADERS)
            return response

        return secured


def _wants_a_page(request: Request) -> bool:
    # A browser's navigation asks for HTML first; htmx and API clients do not.
    accept = request.headers.get("accept", "")
    return accept.startswith("text/html") and not request.headers.get("hx-request")


router = APIRouter(prefix="/ui", route_class=SecureRoute, include_in_schema=False)

templates = Environment(
    loader=PackageLoader("relay.ui", "templates"),
    autoescape=select_autoescape(["html"], default=True),
    undefined=StrictUndefined,
)
templates.globals.update(
    when=format.when, iso=format.iso, relative=format.relative, duration=format.duration,
    percent=format.percent, csrf_field=CSRF_FIELD, csrf_header=CSRF_HEADER,
)  # fmt: skip


def render(
    name: str, session: Session | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    template = templates.get_template(name)
    html = template.render(session=session, now=now_ms(), page=name, **context)
    return HTMLResponse(html, status_code=status_code)


async def page_not_found(request: Request) -> HTMLResponse:
    """Any other ``/ui/...`` address: a page saying so, not the API's JSON. Registered last
    (``relay.ui.install``), after every dashboard route and the static files."""
    response = render("not_found.html", None, 404, what="page", ident=request.url.path)
    response.headers.update(SECURITY_HEADERS)
    return response


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


_MOMENT: TypeAdapter[datetime] = TypeAdapter(Moment)


def _moment(value: str | None, name: str) -> datetime | None:
    """A filter's time, read as the API reads it; a bad one is the user's to fix (422)."""
    if not value:
        return None
    try:
        return _MOMENT.validate_python(value)
    except ValidationError:
        # The same words as the CLI (relay.cli.commands.options.window).
        raise Problem(
            422, f"{name} must be an RFC 3339 time such as 2026-11-24T18:10:03Z, got {value!r}"
        ) from None


Text = Annotated[str | None, Query(max_length=200)]
# The filter form's "any" sends status= (empty): no filter, not a 422.
AnyStatus = Annotated[DeliveryStatus | None, BeforeValidator(lambda v: v or None), Query()]


def _active(filters: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in filters.items() if v}


def _next_page(path: str, filters: dict[str, str | None], cursor: str | None) -> str | None:
    """The link to the next page: the same filters, from the listing's cursor."""
    if cursor is None:
        return None
    return f"{path}?" + urlencode({**_active(filters), "cursor": cursor})


# --- sign-in ---------------------------------------------------------------------------------


@router.get("")
async def home() -> RedirectResponse:
    return see_other("/ui/overview")


@router.get("/login")
async def login_form() -> HTMLResponse:
    return render("login.html", None, error=None)


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    form = await form_data(request)
    response = see_other("/ui/overview")
    client = request.client.host if request.client else None
    if not await sign_in(services, form.get("token", ""), request, response):
        # Logged, once per address per interval, by the authenticator (auth.failed).
        return render("login.html", None, 401, error="That is not a valid token.")
    log.info("ui.signed_in", client=client)
    return response


@router.post("/logout")
async def logout(session: SessionDep, services: ServicesDep, _: ActionForm) -> Response:
    response = see_other("/ui/login")
    await sign_out(services, session, response)
    log.info("ui.signed_out")
    return response


# --- overview --------------------------------------------------------------------------------


async def _overview(services: ServicesDep, access: Access) -> dict[str, Any]:
    """The figures of the session's scope. The per-minute chart counts every source (its
    counters are relay-wide), so a scoped session does not get it."""
    now = now_ms()
    within = await scope.subscription_ids(services, access)
    minutes = await services.store.stats.minutes(now)
    health = await views.subscription_health(services, access, now)
    return {
        "chart": None if access.scoped else chart.build(minutes),
        "depth": await services.store.housekeeping.queue_depth(now, within),
        "troubled": [h for h in health if h.state in ("disabled", "failing", "warning")],
        "workers": await views.workers(services, now),
        "ingest": views.ingest_outcomes(access),
    }


@router.get("/overview")
async def overview(session: SessionDep, services: ServicesDep) -> HTMLResponse:
    return render("overview.html", session, **await _overview(services, session.access))


@router.get("/overview/panel")
async def overview_panel(session: SessionDep, services: ServicesDep) -> HTMLResponse:
    """The Overview's content alone: the page fetches it again every few seconds."""
    return render("overview_panel.html", session, **await _overview(services, session.access))


# --- events ----------------------------------------------------------------------------------


@router.get("/events")
async def events(
    session: SessionDep,
    services: ServicesDep,
    id: Text = None,
    source: Text = None,
    event_type: Text = None,
    status: AnyStatus = None,
    since: Text = None,
    until: Text = None,
    cursor: Text = None,
    internal: Text = None,
) -> Response:
    if id:
        return see_other(f"/ui/events/{quote(id.strip(), safe='')}")
    filters = {
        "source": source, "event_type": event_type, "status": status.value if status else None,
        "since": since, "until": until, "internal": "1" if internal else None,
    }  # fmt: skip
    listing = await inspect.list_events(
        services, session.access, source or None, event_type or None, status,
        _moment(since, "since"), _moment(until, "until"), cursor or None, PAGE_SIZE,
        include_internal=bool(internal),
    )  # fmt: skip
    statuses = await views.delivery_statuses(services, session.access, [e.id for e in listing.data])
    return render(
        "events.html", session, events=listing.data, filters=filters, delivered=statuses,
        next_url=_next_page("/ui/events", filters, listing.next_cursor),
        statuses=[s.value for s in DeliveryStatus], paged=bool(cursor),
    )  # fmt: skip


@router.get("/events/{event_id}")
async def event(event_id: str, session: SessionDep, services: ServicesDep) -> HTMLResponse:
    try:
        detail = await inspect.get_event(event_id, services, session.access)
    except Problem:
        return render("not_found.html", session, 404, what="event", ident=event_id)
    found = await services.store.events.body(event_id)
    body, content_type = found if found else (b"", detail.content_type)
    text, cut = format.pretty_body(body, content_type)
    deliveries = [await inspect.get_delivery(d.id, services) for d in detail.deliveries]
    # A delivery whose lane is held goes when the hold ends, not at its own next attempt.
    now = now_ms()
    waiting = {d.subscription_id for d in deliveries if d.next_attempt_at is not None}
    lanes = {s: await services.store.lanes.view(s, now) for s in waiting}
    holds = {s: lane for s, lane in lanes.items() if lane.held_until is not None}
    return render(
        "event.html", session, event=detail, body=text, body_cut=cut, deliveries=deliveries,
        subs=await views.subscriptions_by_id(services),
        holds=holds,
    )  # fmt: skip


@router.get("/events/{event_id}/body")
async def event_body(event_id: str, session: SessionDep, services: ServicesDep) -> Response:
    """The raw bytes as a download, never rendered: served inline with its own content-type,
    an HTML body would run as a page of the dashboard's origin."""
    found = await services.store.events.body(event_id)
    if found is None:
        raise Problem(404, f"no event {event_id!r}")
    return Response(
        found[0],
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{event_id}.body"'},
    )


@router.post("/events/{event_id}/replay", dependencies=[OperatorAction])
async def replay_event(
    event_id: str, session: SessionDep, services: ServicesDep, _: ActionForm
) -> Response:
    access = session.access
    try:
        made = await services.replays.replay_event(
            event_id, None, lambda sub: access.sees_subscription(sub.sources)
        )
    except NotFannedOut:
        raise Problem(409, "the event is not fanned out yet; try again in a moment") from None
    if made is None:
        raise Problem(404, f"no event {event_id!r}")
    return see_other(f"/ui/events/{event_id}")


@router.post("/deliveries/{delivery_id}/retry", dependencies=[OperatorAction])
async def retry_delivery(delivery_id: str, services: ServicesDep, form: ActionForm) -> Response:
    try:
        delivery = await services.replays.retry(delivery_id)
    except UnknownDelivery:
        raise Problem(404, f"no delivery {delivery_id!r}") from None
    except InFlight:
        raise Problem(409, "an attempt is in flight; try again shortly") from None
    if form.get("back") == "dead-letters":
        return see_other("/ui/dead-letters")
    return see_other(f"/ui/events/{delivery.event_id}")


# --- subscriptions ---------------------------------------------------------------------------


@router.get("/subscriptions")
async def subscriptions(session: SessionDep, services: ServicesDep) -> HTMLResponse:
    health = await views.subscription_health(services, session.access, now_ms())
    return render("subscriptions.html", session, subscriptions=health)


async def _sub_action(services: ServicesDep, sub_id: str, action: str) -> Any:
    subs = services.subscriptions
    try:
        if action == "pause" or action == "resume":
            return await subs.set_paused(sub_id, action == "pause")
        if action == "enable":
            return await subs.update(sub_id, SubscriptionPatch(enabled=True))
        if action == "test":
            return await subs.send_test(sub_id)
        return await subs.rotate_secret(sub_id)
    except UnknownSubscription:
        raise Problem(404, f"no subscription {sub_id!r}") from None
    except InvalidSubscription as exc:  # e.g. resuming a relay listen subscription
        raise Problem(422, str(exc)) from None


@router.post("/subscriptions/{sub_id}/{action}")
async def subscription_action(
    sub_id: str, action: str, session: SessionDep, services: ServicesDep, _: ActionForm
) -> Response:
    if action not in ("pause", "resume", "enable", "test", "rotate-secret"):
        raise Problem(404, f"no action {action!r}")
    # As the API: re-enabling changes the subscription (PATCH), rotating issues a secret.
    needed = Role.ADMIN if action in ("enable", "rotate-secret") else Role.OPERATOR
    if not session.access.allows(needed):
        raise Problem(403, f"this needs the {needed.value} role")
    done = await _sub_action(services, sub_id, action)
    if action == "test":
        return render("test_sent.html", session, sub_id=sub_id, sent=done)
    if action == "rotate-secret":
        return render("secret.html", session, rotated=done)
    return see_other("/ui/subscriptions")


# --- dead letters ----------------------------------------------------------------------------


async def _filter_in_scope(services: ServicesDep, access: Access, sub_id: str | None) -> None:
    """A scoped session's filter naming a subscription outside its scope: 404, as the API.
    (An unscoped one's typo shows an empty list, as it always has.)"""
    if access.scoped:
        await known_subscription(services, access, sub_id or None)


async def _dead_filter(
    services: ServicesDep,
    access: Access,
    subscription_id: str | None,
    since: str | None,
    until: str | None,
    after: str | None = None,
) -> DeadLetters:
    await _filter_in_scope(services, access, subscription_id)
    return DeadLetters(
        subscription_id or None, to_ms(_moment(since, "since")), to_ms(_moment(until, "until")),
        limit=REPLAY_BATCH, after=after or None,
        within=await scope.subscription_ids(services, access),
    )  # fmt: skip


@router.get("/dead-letters")
async def dead_letters(
    session: SessionDep,
    services: ServicesDep,
    subscription_id: Text = None,
    since: Text = None,
    until: Text = None,
    cursor: Text = None,
) -> HTMLResponse:
    await _filter_in_scope(services, session.access, subscription_id)
    listing = await inspect.list_dead_letters(
        services, session.access, subscription_id or None, _moment(since, "since"),
        _moment(until, "until"), cursor or None, PAGE_SIZE,
    )  # fmt: skip
    filters = {"subscription_id": subscription_id, "since": since, "until": until}
    return render(
        "dead_letters.html", session, listing=listing, filters=filters,
        subs=await views.subscriptions_by_id(services),
        next_url=_next_page("/ui/dead-letters", filters, listing.next_cursor),
        query=urlencode(_active(filters)),
    )  # fmt: skip


@router.get("/dead-letters/replay")
async def confirm_replay(
    session: SessionDep,
    services: ServicesDep,
    subscription_id: Text = None,
    since: Text = None,
    until: Text = None,
) -> HTMLResponse:
    which = await _dead_filter(services, session.access, subscription_id, since, until)
    total = await services.replays.count_dead(which)
    filters = {"subscription_id": subscription_id or "", "since": since or "", "until": until or ""}
    return render("replay_confirm.html", session, total=total, filters=filters)


@router.post("/dead-letters/replay", dependencies=[OperatorAction])
async def replay_dead_letters(
    request: Request, session: SessionDep, services: ServicesDep, form: ActionForm
) -> HTMLResponse:
    """One batch, then the progress; the answer asks for the next batch while any is left
    (``after`` = the last one looked at, so a delivery that dies again is not met twice)."""
    which = await _dead_filter(
        services, session.access, form.get("subscription_id"), form.get("since"),
        form.get("until"), form.get("after"),
    )  # fmt: skip
    try:
        requeued, remaining, last = await services.replays.replay_dead(which)
    except InFlight:
        requeued, remaining, last = 0, await services.replays.count_dead(which), which.after
    done = int(form.get("done") or 0) + requeued
    more = last is not None and remaining > 0
    fields = {"subscription_id": form.get("subscription_id", ""), "since": form.get("since", ""),
              "until": form.get("until", ""), "after": last or "", "done": str(done)}  # fmt: skip
    # htmx swaps the progress into the page; a browser without script gets a whole page.
    name = "replay_progress.html" if request.headers.get("hx-request") else "replay_page.html"
    return render(name, session, done=done, remaining=remaining, more=more, fields=fields)


# --- sources ---------------------------------------------------------------------------------


@router.get("/sources")
async def sources(session: SessionDep, services: ServicesDep) -> HTMLResponse:
    access = session.access
    found = [s.public() for s in await services.store.sources.all() if access.sees_source(s.name)]
    return render("sources.html", session, sources=found, rejections=views.rejections(access))
