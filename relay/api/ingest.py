"""``POST /ingest/{source}``: acknowledge at once, fan out after the response."""

from __future__ import annotations

import io
import re

import orjson
import structlog
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, Response

from relay.api.deps import ServicesDep
from relay.api.problems import Problem, problem_docs, unavailable
from relay.delivery.fanout import EventRef
from relay.delivery.ingest import Challenge, NotStored, TooLong, UnknownSource
from relay.domain import ids
from relay.domain.models import IngestAccepted
from relay.domain.verification import VerificationError
from relay.observability import tracing
from relay.observability.metrics import INGESTED, UNKNOWN_SOURCE, count_ingested
from relay.observability.tracing import IngestTrace

router = APIRouter(tags=["ingest"])
_VALID_CONTENT_TYPE = re.compile(r"^[\x20-\x7e]{0,256}$")
log = structlog.get_logger("relay.ingest")


def _too_large(cap: int) -> Problem:
    # relay.api.protocol closes the connection after this answer, once the client stops
    # sending (or after a short while): the rest of the upload is not read.
    return Problem(413, f"the body exceeds {cap} bytes")


async def read_capped(request: Request, cap: int) -> bytes:
    """The raw body, refusing more than ``cap`` bytes without buffering past it.

    A declared Content-Length over the cap is refused before reading; a chunked body, or one
    whose length was not declared, is cut as soon as it passes the cap. The body is held
    once: ``getvalue()`` hands over BytesIO's own buffer (``bytes(bytearray)`` copied it,
    doubling the peak per body).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _too_large(cap)
    body = io.BytesIO()
    async for chunk in request.stream():
        if body.tell() + len(chunk) > cap:
            raise _too_large(cap)
        body.write(chunk)
    return body.getvalue()


def _rejected(bound: structlog.stdlib.BoundLogger, source: str, reason: str, status: int) -> None:
    INGESTED.labels(source, "rejected", reason).inc()
    # A 503 (Redis evicting, or past the deadline) comes by the thousand a second for as
    # long as its cause lasts, which is logged once (redis.evicting, redis.unavailable):
    # each refusal is a debug line and a count, as for an outage (relay.api.problems).
    level = bound.warning if status == 401 else bound.debug if status == 503 else bound.info
    level("ingest.rejected", reason=reason, status=status)


@router.post(
    "/ingest/{source}",
    status_code=202,
    response_model=IngestAccepted,
    responses={
        200: {
            "description": "A repeat of an idempotency key (or a provider's challenge answered).",
            "content": {
                "application/json": {
                    "example": {"event_id": "evt_01JD3Y9T0W6Y7Q1G8B3C5D7E9F", "status": "duplicate"}
                }
            },
        },
        **problem_docs(400, 401, 404, 408, 413, 431, 503),
    },
    openapi_extra={"requestBody": {"content": {"*/*": {}}, "required": False}},
)
async def ingest(
    source: str, request: Request, background: BackgroundTasks, services: ServicesDep
) -> Response:
    """Accept a webhook for a source. A 202 means the event is stored in Redis."""
    path = request.scope["path"]
    # ASGI header names are lower-case already; a dict answers "traceparent?" in 30 ns.
    headers = dict(request.headers.items())
    with tracing.active().ingest(headers, source, path) as trace:
        try:
            response = await _accept(source, path, headers, request, background, services, trace)
        except Problem as exc:
            trace.answered(exc.status)
            raise
        trace.answered(response.status_code)
        return response


async def _accept(
    source: str,
    path: str,
    headers: dict[str, str],
    request: Request,
    background: BackgroundTasks,
    services: ServicesDep,
    trace: IngestTrace,
) -> Response:
    request_id = request.headers.get("x-request-id") or ids.request_id()
    # Method and path (with status on each outcome) let these lines stand in for uvicorn's
    # access line, off by default; scope["path"] is what it logged, without building a URL.
    bound = log.bind(request_id=request_id, source=source, method=request.method, path=path)
    try:
        found, _ = await services.ingestor.source(source)
        # Before the body: what fails on its headers alone is not worth buffering.
        services.ingestor.check_headers(found, headers)
        body = await read_capped(request, services.ingestor.body_cap(found))
        content_type = request.headers.get("content-type", "")
        if not _VALID_CONTENT_TYPE.match(content_type):
            # It is sent on with every delivery, and must be a valid header there too.
            raise Problem(400, "the content-type header is not valid", reason="bad_content_type")
        outcome = await services.ingestor.ingest(source, headers, body, content_type, trace.context)
    except UnknownSource:
        _rejected(bound, UNKNOWN_SOURCE, "unknown_source", 404)
        raise Problem(404, f"no source named {source!r}") from None
    except TooLong as exc:
        _rejected(bound, source, f"{exc.field}_too_long", 400)
        raise Problem(400, str(exc), reason=f"{exc.field}_too_long", header=exc.header) from None
    except NotStored as exc:
        _rejected(bound, source, exc.reason, 503)
        raise unavailable(exc.reason, exc.detail) from None
    except VerificationError as exc:
        _rejected(bound, source, exc.reason, 401)
        raise Problem(401, exc.detail, title="Verification failed", reason=exc.reason) from None
    except Problem as exc:
        _rejected(bound, source, exc.extra.get("reason", "body_too_large"), exc.status)
        raise

    if isinstance(outcome, Challenge):
        bound.info("ingest.challenge")
        return JSONResponse(outcome.reply)
    result = outcome.result
    trace.accepted(result.event_id, outcome.event_type)
    fields = {"event_id": result.event_id, "event_type": outcome.event_type, "bytes": len(body)}
    count_ingested(source, result.status)
    if result.status == "duplicate":
        bound.info("ingest.duplicate", **fields, status=200)
        return JSONResponse({"event_id": result.event_id, "status": "duplicate"}, status_code=200)
    bound.info("ingest.accepted", **fields, status=202)
    if result.needs_fan_out:
        event = EventRef(result.event_id, source, outcome.event_type, outcome.headers, body,
                         trace=trace.context)  # fmt: skip
        # Light fan-out after the response; the batcher logs a failed commit and leaves the
        # event to the recovery cron (it is safe in Redis).
        background.add_task(services.fanout.submit, event)
    return Response(
        orjson.dumps({"event_id": result.event_id, "status": "accepted"}),
        status_code=202,
        media_type="application/json",
        headers={"x-request-id": request_id},
    )
