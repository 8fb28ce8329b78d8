"""Admin API: try a filter and transform on an event before saving them."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from relay.api.auth import AccessDep, AuditedRoute, needs
from relay.api.deps import ServicesDep
from relay.api.problems import Problem, problem_docs
from relay.delivery.fanout import UnknownSubscription
from relay.delivery.preview import Preview, Sample, UnknownEvent
from relay.domain.access import Access, Role
from relay.domain.filters import FilterField
from relay.domain.models import Shaping

router = APIRouter(
    prefix="/api",
    tags=["admin"],
    route_class=AuditedRoute,
    responses=problem_docs(401, 403, 404, 422, 429, 503),
)


class PreviewIn(BaseModel):
    """The event to try: a stored one (``event_id``), or a sample (``body``, a JSON value,
    or ``raw_body``, text sent as is, with ``headers``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "body": {"ref": "refs/heads/main", "repository": {"full_name": "acme/api"}},
                    "headers": {"X-GitHub-Event": "push"},
                }
            ]
        },
    )

    event_id: str | None = Field(default=None, max_length=64)
    body: Any = None
    raw_body: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, max_length=100)
    content_type: str = Field(default="application/json", max_length=256)
    source: str | None = Field(default=None, max_length=64)
    event_type: str | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _one_event(self) -> PreviewIn:
        given = [f for f in ("event_id", "body", "raw_body") if f in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("give exactly one of event_id, body or raw_body")
        return self

    def sample(self, max_bytes: int) -> Sample:
        if self.event_id is not None:
            return Sample(event_id=self.event_id)
        try:
            body = self.raw_body.encode() if self.raw_body is not None else orjson.dumps(self.body)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits, say
            raise Problem(422, "the sample body cannot be written as JSON") from None
        if len(body) > max_bytes:
            raise Problem(422, f"the sample body exceeds {max_bytes} bytes")
        return Sample(body, self.headers, self.content_type, self.source, self.event_type)


class InlinePreviewIn(PreviewIn):
    filter: FilterField | None = None
    transform: Shaping | None = None


class PreviewOut(BaseModel):
    matched: bool = Field(description="Whether a delivery would be made.")
    failed: str | None = Field(description="The condition that did not hold.")
    body: str | None = Field(description="The body that would be sent (as text).")
    headers: dict[str, str] | None = Field(
        description="The headers that would be sent; signatures are made when sending."
    )
    transform_version: str | None
    error: str | None = Field(description="Why a delivery of it would die.")

    @classmethod
    def of(cls, found: Preview) -> PreviewOut:
        body = None if found.body is None else found.body.decode(errors="replace")
        return cls(matched=found.matched, failed=found.failed, body=body,
                   headers=found.headers, transform_version=found.transform_version,
                   error=found.error)  # fmt: skip


async def _event_in_scope(services: ServicesDep, access: Access, spec: PreviewIn) -> None:
    if spec.event_id is not None and access.scoped:
        event = await services.store.events.get(spec.event_id)
        if event is None or not access.sees_source(event.source):
            raise Problem(404, f"no event {spec.event_id!r}")


@router.post("/subscriptions/{sub_id}/preview", **needs(Role.OPERATOR))
async def preview_subscription(
    sub_id: str, spec: PreviewIn, services: ServicesDep, access: AccessDep
) -> PreviewOut:
    """Would this subscription deliver the event, and what would it send? Nothing is stored
    or sent."""
    await _event_in_scope(services, access, spec)
    try:
        sub = await services.subscriptions.get(sub_id)
        sample = spec.sample(services.settings.max_body_bytes)
        return PreviewOut.of(await services.previews.of_subscription(sub, sample))
    except UnknownSubscription:
        raise Problem(404, f"no subscription {sub_id!r}") from None
    except UnknownEvent as exc:
        raise Problem(404, f"no event {exc.args[0]!r}") from None


@router.post("/preview", **needs(Role.OPERATOR))
async def preview_inline(
    spec: InlinePreviewIn, services: ServicesDep, access: AccessDep
) -> PreviewOut:
    """Try a ``filter`` and ``transform`` (as a subscription would have them) on an event."""
    await _event_in_scope(services, access, spec)
    try:
        sample = spec.sample(services.settings.max_body_bytes)
        return PreviewOut.of(await services.previews.inline(spec.filter, spec.transform, sample))
    except UnknownEvent as exc:
        raise Problem(404, f"no event {exc.args[0]!r}") from None
