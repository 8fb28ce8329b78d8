"""Structured logging: one structlog pipeline for our events and for uvicorn's and arq's.

JSON lines by default (console rendering on a terminal or with ``RELAY_LOG_FORMAT=console``).
The ``redact`` processor runs before rendering on every line, ours and the libraries':
URL query strings and userinfo are cut, auth and signature headers and anything named like
a secret are masked. Tracebacks are rendered without local variables.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.types import EventDict, Processor, WrappedLogger

# REDACTED is re-exported: callers that check log output know it as logs.REDACTED.
from relay.domain.redaction import REDACTED as REDACTED
from relay.domain.redaction import looks_secret

_URL_IN_TEXT = re.compile(r"\b(https?://)([^\s/@]+@)?([^\s?#]+)(\?[^\s#]*)?")
# The request line in uvicorn's access log: "POST /ingest/x?token=... HTTP/1.1".
_QUERY_IN_REQUEST_LINE = re.compile(r'("[A-Z]+ [^\s?"]*)\?[^\s"]*')


def scrub_url(url: str) -> str:
    """Drop userinfo and query string from a URL: both often carry credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _scrub_text(text: str) -> str:
    text = _QUERY_IN_REQUEST_LINE.sub(r"\1", text)
    return _URL_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(3)}", text)


def _redact(key: str, value: Any) -> Any:
    if looks_secret(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, str) and ("://" in value or "?" in value):
        return _scrub_text(value)
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn adds an ANSI-coloured copy of its message; JSON readers only want one.
    event_dict.pop("color_message", None)
    for key, value in list(event_dict.items()):
        if key != "event":
            event_dict[key] = _redact(key, value)
        elif isinstance(value, str) and ("://" in value or "?" in value):
            event_dict[key] = _scrub_text(value)
    return event_dict


def _json_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at emit time (it may be replaced after start-up)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure(fmt: str = "auto", level: str = "INFO", *, access_log: bool = False) -> None:
    """Route structlog and the standard library (uvicorn, arq) through one pipeline."""
    console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        exc: list[Processor] = []
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
        exc = [structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: structlog.testing.capture_logs must see every logger, even module-level ones.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exc, renderer],
    )
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "arq.worker"):
        lib = logging.getLogger(name)
        lib.handlers[:] = []
        lib.propagate = True
    # uvicorn skips its access line, formatting and all, when its logger has no handler to
    # reach. Its own access_log=False does this too, but `relay serve` configures logging
    # again after uvicorn has (in serve_app), so the choice is made here as well.
    logging.getLogger("uvicorn.access").propagate = access_log
    # arq logs every job start and end (the recovery cron every few seconds); our delivery
    # lines carry the same facts with context, so only its warnings and errors stay.
    logging.getLogger("arq.worker").setLevel(logging.WARNING)
    # httpx logs every request at INFO with its full URL; our attempt lines say it better.
    logging.getLogger("httpx").setLevel(logging.WARNING)
