"""RFC 9457 problem details: every error the API returns has this shape.

{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no source 'x'"}
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from relay.domain.redaction import validation_errors
from relay.observability.metrics import HTTP_REFUSED

MEDIA_TYPE = "application/problem+json"


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; some problems add fields (``reason``, ``errors``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "no delivery 'dlv_01JD3Y9T0W6Y7Q1G8B3C5D7E9F'",
                }
            ]
        },
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str


def problem_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problems a route may answer with."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": ProblemDetails.model_json_schema()}},
        }
        for status in statuses
    }


log = structlog.get_logger("relay.api")


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


def invalid(exc: RequestValidationError | ValidationError) -> Problem:
    """A 422 for input that failed validation, without echoing the input back."""
    return Problem(422, "the request is not valid", errors=validation_errors(exc.errors()))


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.body(), status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers
    )


def unavailable(reason: str, detail: str, retry_after_s: int = 5) -> Problem:
    """A 503 the sender should retry (webhook providers do on a 5xx), after ``Retry-After``."""
    return Problem(503, detail, headers={"retry-after": str(retry_after_s)}, reason=reason)


def storage_problem(exc: Exception, *, ingest: bool) -> Problem:
    """What a request that met a Redis outage is told, saying exactly what was stored."""
    if isinstance(exc, OutOfMemoryError):
        # Redis refuses a write (a script: before its first one) when it is full.
        return unavailable(
            "redis_out_of_memory",
            "Redis is out of memory (it reached maxmemory and refuses writes): nothing was "
            "stored, try again later",
            retry_after_s=30,
        )
    if isinstance(exc, RedisTimeoutError):
        if ingest:
            # relay.storage.lua.ingest refuses work that reaches Redis past this deadline.
            return unavailable(
                "redis_timeout",
                "Redis did not answer in time: nothing was stored (the relay's Redis refuses "
                "a webhook that reaches it after the request's deadline), try again",
            )
        return unavailable(
            "redis_timeout",
            "Redis did not answer in time: the change may or may not have been made; read it "
            "back before trying again",
        )
    return unavailable("redis_unavailable", "storage is unavailable; nothing was stored, try again")


# What FastAPI raises (as a 400) for a body it cannot decode at all: invalid UTF-8, or
# nesting past the parser's recursion limit.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_NOT_JSON = {
    "loc": ["body"],
    "msg": "the body cannot be read as JSON (invalid UTF-8, or nested too deep)",
    "type": "json_invalid",
}


def install(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            # A body that is not UTF-8 fails before JSON parsing: the same 422 as bad JSON.
            return problem_response(Problem(422, "the request is not valid", errors=[_NOT_JSON]))
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(Problem(exc.status_code, str(exc.detail), headers=headers))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problem = invalid(exc)
        if "json" not in request.headers.get("content-type", "") and any(
            tuple(e["loc"]) == ("body",) for e in problem.extra["errors"]
        ):
            # Not "Input should be a valid dictionary": say what the route wants.
            problem.detail = "expected a JSON body sent with content-type: application/json"
        return problem_response(problem)

    async def on_redis_down(request: Request, exc: Exception) -> JSONResponse:
        # The outage is logged once by relay.delivery.connection (thousands of refusals a
        # second must not flood the logs): each refusal is a debug line and a count.
        problem = storage_problem(exc, ingest=request.scope["path"].startswith("/ingest/"))
        HTTP_REFUSED.labels(problem.extra["reason"]).inc()
        log.debug("request.refused", path=request.scope["path"], status=503,
                  reason=problem.extra["reason"])  # fmt: skip
        return problem_response(problem)

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        # The client left mid-body, or relay.api.protocol timed it out: nobody reads an
        # answer, and it is no error of ours (this was a traceback at error level).
        log.info("request.disconnected", method=request.method, path=request.scope["path"])
        return Response(status_code=400)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.error", path=request.url.path)
        return problem_response(Problem(500, "internal error; see the relay's logs"))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(RedisConnectionError, on_redis_down)
    app.add_exception_handler(RedisTimeoutError, on_redis_down)
    app.add_exception_handler(OutOfMemoryError, on_redis_down)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Exception, on_unexpected)
