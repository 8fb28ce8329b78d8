"""Structured logging: one structlog pipeline for our events and for uvicorn's and arq's.

Our lines take structlog's native path, with no ``logging`` on the way (the standard
library bridge cost a third of the ingest endpoint's time); the libraries' records are
bridged in through the same processors, so both look alike. JSON lines by default (console
rendering on a terminal or with ``RELAY_LOG_FORMAT=console``). The ``redact`` processor
runs before rendering on every line, ours and the libraries': URL query strings and
userinfo are cut, auth and signature headers and anything named like a secret are masked.
Tracebacks are rendered without local variables, and their exception text goes through the
same rule (``redact_exception``), pydantic's quoted inputs masked.
``truncate`` then cuts any string value longer than ``MAX_VALUE_CHARS``.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
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
from relay.observability import tracing

# Field names are few and come back on every line, and the regex behind looks_secret, once
# per field, was two thirds of a line's cost. Bounded: header names in logged maps are the
# senders' to choose.
_looks_secret = functools.lru_cache(maxsize=4096)(looks_secret)
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
    if _looks_secret(key):
        return REDACTED
    # Strings first: most fields are, and the Mapping check is an ABC's, slower than it looks.
    if isinstance(value, str):
        return _scrub_text(value) if "://" in value or "?" in value else value
    if isinstance(value, Mapping):
        return {k: _redact(str(k), v) for k, v in value.items()}
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


# pydantic quotes what it refused (``input_value='Bearer ...'``): any of it may be a secret.
_INPUT_VALUE = re.compile(r"input_value=.*?, input_type=", re.S)


def _scrub_exception_text(text: str) -> str:
    return _scrub_text(_INPUT_VALUE.sub(f"input_value={REDACTED}, input_type=", text))


def redact_exception(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Exception text through the same redaction as fields: it runs after the exception is
    rendered (as text, or as structlog's list of dicts), since ``redact`` sees only
    ``exc_info``."""
    exc = event_dict.get("exception")
    if isinstance(exc, str):
        event_dict["exception"] = _scrub_exception_text(exc)
    elif isinstance(exc, list):
        for frame in exc:
            if isinstance(frame, dict) and isinstance(frame.get("exc_value"), str):
                frame["exc_value"] = _scrub_exception_text(frame["exc_value"])
    return event_dict


# Longest string value a line carries. Values come from senders too (an event type, a path,
# a header map), and one 64 MB header once went into every line about its event.
MAX_VALUE_CHARS = 1024


def _truncated(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) <= MAX_VALUE_CHARS:
            return value
        return f"{value[:MAX_VALUE_CHARS]}...[{len(value) - MAX_VALUE_CHARS} more chars]"
    if isinstance(value, Mapping):  # a header map: the names are the sender's too
        return {_truncated(k): _truncated(v) for k, v in value.items()}
    # Anything else is ours (numbers, exc_info, which must stay a tuple for the renderer).
    return value


def truncate(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Cut every string value (the event's text included) to ``MAX_VALUE_CHARS``."""
    for key, value in event_dict.items():
        # Strings of a normal length are nearly every value: the cheap test first.
        if not (isinstance(value, str) and len(value) <= MAX_VALUE_CHARS):
            event_dict[key] = _truncated(value)
    return event_dict


def _json_bytes(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str)


def _json_text(value: Any, **_: Any) -> str:
    # The standard library's handlers write text.
    return _json_bytes(value).decode()


class _StdoutLogger:
    """Writes each of our rendered lines straight to stdout.

    To ``sys.stdout`` as it is at write time, not at creation: loggers are cached, and
    pytest's capture, CliRunner or a caller may replace stdout after start-up. JSON lines
    come as bytes and go to the binary buffer underneath, skipping a decode and an encode.
    """

    __slots__ = ("name",)
    # One lock for every logger: they all share the one stdout.
    _lock = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name  # what add_logger_name reads, as it reads a logging.Logger's

    def msg(self, line: str | bytes) -> None:
        out = sys.stdout
        with self._lock:
            if isinstance(line, str):
                out.write(line + "\n")
            elif (buffer := getattr(out, "buffer", None)) is not None:
                buffer.write(line + b"\n")
            else:  # a text-only stream, like an io.StringIO put in place of stdout
                out.write(line.decode() + "\n")
            # A line at a time: `relay dev | jq` and log shippers read a pipe as it comes.
            out.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stdout_logger(name: str = "relay", *_: Any) -> _StdoutLogger:
    # Every structlog logger here is the relay's own, and all of ours are named.
    return _StdoutLogger(name)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at emit time (it may be replaced after start-up)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure(
    fmt: str = "auto", level: str = "INFO", *, access_log: bool = False, cache: bool = True
) -> None:
    """Our lines on structlog's native path; the standard library's (uvicorn, arq) bridged in.

    Both run the same processors, so every line has the same fields. ``cache`` keeps each
    logger as first built, which production wants; a cached logger keeps this configuration's
    processors even after a later ``structlog.configure`` or ``reset_defaults``, so code that
    reconfigures (tests with ``capture_logs``) must not have module-level loggers cached.
    """
    console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        # trace_id and span_id, when tracing is on (configure it first).
        *tracing.active().log_processors(),
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
        truncate,
    ]
    ours: list[Processor]
    theirs: list[Processor]
    if console:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        ours = theirs = [structlog.processors.format_exc_info, redact_exception, renderer]
    else:
        exc = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        ours = [exc, redact_exception, structlog.processors.JSONRenderer(serializer=_json_bytes)]
        theirs = [exc, redact_exception, structlog.processors.JSONRenderer(serializer=_json_text)]

    structlog.configure(
        processors=[*shared, *ours],
        # Calls below the level are a bare `return None`, decided once here.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=_stdout_logger,
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *theirs],
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
