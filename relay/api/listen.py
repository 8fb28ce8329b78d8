"""Admin API: `relay listen` streams and `relay tail`, as Server-Sent Events.

Listening takes the operator role (it acts on deliveries: it records their attempts) and
a source in the token's scope; tailing is reading (viewer), and a scoped token's tail shows
only its sources' events and attempts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from relay.api import scope
from relay.api.auth import AccessDep, AuditedRoute, needs
from relay.api.deps import ServicesDep
from relay.api.problems import Problem, problem_docs
from relay.api.subscriptions import answers, created
from relay.api.views import SubscriptionCreatedView
from relay.delivery.listen import KEEPALIVE, Frame, NotAListener, NotWaiting
from relay.delivery.tail import TailFilter, follow
from relay.domain.access import Role
from relay.domain.models import SubscriptionCreated
from relay.domain.outcome import AttemptResult

router = APIRouter(
    prefix="/api",
    tags=["listen"],
    route_class=AuditedRoute,
    responses=problem_docs(401, 403, 404, 409, 422, 429, 503),
)

_SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def _sse(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _stream(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=_SSE_HEADERS)


class ListenerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="The source whose events the listener gets.")
    event_types: list[str] = Field(default_factory=lambda: ["*"])
    forward_url: str = Field(description="Where the CLI forwards (recorded; never called).")


class AttemptReport(BaseModel):
    """What the local app answered, as `relay listen` saw it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    status_code: int | None = Field(default=None, ge=100, le=599)
    duration_ms: float = Field(default=0.0, ge=0)
    response_excerpt: str = ""
    error: str | None = Field(default=None, max_length=100)
    error_message: str | None = Field(default=None, max_length=500)
    retry_after_s: float | None = Field(default=None, ge=0)


@router.post(
    "/listeners",
    status_code=201,
    response_model=SubscriptionCreatedView,
    **needs(Role.OPERATOR),
)
async def create_listener(
    spec: ListenerIn, services: ServicesDep, access: AccessDep
) -> SubscriptionCreated:
    """A listening subscription on one source, drained through its stream. Its signing
    secret (for the local app to verify deliveries) is in this response and never again."""
    scope.require_sources(access, [spec.source])
    async with answers():
        saved = await services.listeners.create(spec.source, spec.event_types, spec.forward_url)
    return created(saved)


@router.get("/listeners/{sub_id}/stream", response_class=StreamingResponse, **needs(Role.OPERATOR))
async def listener_stream(sub_id: str, services: ServicesDep) -> StreamingResponse:
    """The listener's deliveries (``event: delivery``), one at a time, each waiting for its
    report; ``hello`` first, ``gone`` when the listener was removed."""
    frames = services.listeners.stream(sub_id)
    try:
        first = await anext(frames)
    except NotAListener:
        raise Problem(404, f"no listener {sub_id!r}") from None

    async def sse() -> AsyncIterator[bytes]:
        frame: Frame = first
        try:
            while True:
                yield b": alive\n\n" if frame is KEEPALIVE else _sse(frame.kind, frame.data)
                frame = await anext(frames)
        except StopAsyncIteration:
            return
        finally:
            await frames.aclose()

    return _stream(sse())


@router.post(
    "/listeners/{sub_id}/deliveries/{delivery_id}/attempt",
    status_code=204,
    **needs(Role.OPERATOR),
)
async def report_attempt(
    sub_id: str, delivery_id: str, report: AttemptReport, services: ServicesDep
) -> Response:
    """The local app's answer to a delivery from the stream: recorded as its attempt."""
    try:
        await services.listeners.report(sub_id, delivery_id, AttemptResult(**report.model_dump()))
    except NotWaiting:
        raise Problem(
            409, f"not waiting for {delivery_id!r} here: it will be delivered again"
        ) from None
    return Response(status_code=204)


@router.delete("/listeners/{sub_id}", status_code=204, **needs(Role.OPERATOR))
async def delete_listener(sub_id: str, services: ServicesDep) -> Response:
    """Stop listening: the subscription goes, and what waits in its lane is closed."""
    try:
        await services.listeners.delete(sub_id)
    except NotAListener:
        raise Problem(404, f"no listener {sub_id!r}") from None
    return Response(status_code=204)


@router.get("/tail", response_class=StreamingResponse, **needs(Role.VIEWER))
async def tail(
    services: ServicesDep,
    access: AccessDep,
    source: str | None = None,
    status: Annotated[str | None, Query(pattern="^failed$")] = None,
) -> StreamingResponse:
    """Events accepted (``event: event``) and attempts recorded (``event: attempt``) from
    now on; ``status=failed``: only attempts that failed."""
    # A scoped tail shows its sources' events and the attempts of the subscriptions it
    # sees (as they are when the tail starts), like every other listing.
    visible = await scope.subscription_ids(services, access)
    shown = TailFilter(
        source=source,
        failed_only=status == "failed",
        within=access.sources,
        subscriptions=None if visible is None else frozenset(visible),
    )

    async def sse() -> AsyncIterator[bytes]:
        yield b": tailing\n\n"
        async for message in follow(services.store, shown):
            yield b": alive\n\n" if message is None else _sse(message["kind"], message)

    return _stream(sse())
