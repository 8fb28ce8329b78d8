from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from relay.observability.logs import MAX_VALUE_CHARS, REDACTED, configure, redact, scrub_url


def test_scrub_url_drops_userinfo_and_query() -> None:
    assert scrub_url("https://user:pw@hooks.example.com:8443/in?token=abc#x") == (
        "https://hooks.example.com:8443/in"
    )


def test_redact_masks_secret_keys_headers_and_urls_in_text() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "delivery.dead",
            "admin_token": "t0k",
            "headers": {"Authorization": "Bearer x", "webhook-signature": "v1,abc", "x-ok": "1"},
            "error": "ConnectError: http://u:p@host.example/x?sig=1 refused",
            "url": "https://host.example/path?api_key=1",
        },
    )
    assert event["admin_token"] == REDACTED
    assert event["headers"] == {
        "Authorization": REDACTED,
        "webhook-signature": REDACTED,
        "x-ok": "1",
    }
    assert event["error"] == "ConnectError: http://host.example/x refused"
    assert event["url"] == "https://host.example/path"


@pytest.fixture
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    logging.getLogger("uvicorn.access").propagate = True


@pytest.fixture
def json_logs(
    capsys: pytest.CaptureFixture[str], reset_logging: None
) -> pytest.CaptureFixture[str]:
    # Loggers are cached as in production: only those these tests make, which go with them.
    # The access line is opt-in; a test here reads it.
    configure("json", "INFO", access_log=True)
    return capsys


def last_line(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    line: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return line


def test_json_lines_with_exceptions_but_no_locals(json_logs: pytest.CaptureFixture[str]) -> None:
    secret_local = "whsec_do-not-print-me"  # noqa: F841 - must not show up in the traceback
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("t").exception("delivery.job_error", delivery_id="dlv_1")
    line = last_line(json_logs)
    assert line["event"] == "delivery.job_error"
    assert line["level"] == "error"
    assert line["delivery_id"] == "dlv_1"
    assert "ValueError" in json.dumps(line["exception"])
    assert "whsec_do-not-print-me" not in json.dumps(line)


def test_access_log_request_lines_lose_their_query(json_logs: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", "/ingest/gh?token=SUPERSECRET", "1.1", 202
    )
    line = last_line(json_logs)
    assert line["event"] == '127.0.0.1:5 - "POST /ingest/gh HTTP/1.1" 202'


def test_stdlib_records_are_json_too(json_logs: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    line = last_line(json_logs)
    assert line["event"] == "Started server process [42]"
    assert line["logger"] == "uvicorn.error"
    assert "color_message" not in line


def test_our_lines_and_the_libraries_have_the_same_shape(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    structlog.get_logger("relay.ingest").warning("ingest.rejected", status=401)
    ours = last_line(json_logs)
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    theirs = last_line(json_logs)
    assert (ours["logger"], ours["level"]) == ("relay.ingest", "warning")
    assert (theirs["logger"], theirs["level"]) == ("uvicorn.error", "warning")
    assert set(ours) - {"status"} == set(theirs) == {"event", "level", "logger", "timestamp"}


def test_our_lines_bypass_the_standard_library_and_below_level_ones_are_dropped(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    log = structlog.get_logger("relay.ingest")
    log.debug("not.shown")
    log.info("ingest.accepted", status=202)
    lines = json_logs.readouterr().out.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["ingest.accepted"]
    assert records == []


def test_cached_loggers_write_to_the_stdout_of_the_moment(
    json_logs: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = structlog.get_logger("relay.cli")
    log.info("first")  # built and cached now, while pytest's capture is stdout
    assert last_line(json_logs)["event"] == "first"
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, write_through=True))
    log.info("to.binary")
    text_only = io.StringIO()  # no binary buffer underneath
    monkeypatch.setattr(sys, "stdout", text_only)
    log.info("to.text")
    assert json.loads(raw.getvalue())["event"] == "to.binary"
    assert json.loads(text_only.getvalue())["event"] == "to.text"


def test_the_access_line_is_opt_in(capsys: pytest.CaptureFixture[str], reset_logging: None) -> None:
    configure("json", "INFO")
    # uvicorn asks this for each connection: without a handler it never formats the line.
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    logging.getLogger("uvicorn.access").info("%s", '127.0.0.1:5 - "GET / HTTP/1.1" 200')
    assert capsys.readouterr().out == ""


def test_exception_text_is_redacted_in_json_and_console(
    capsys: pytest.CaptureFixture[str], reset_logging: None
) -> None:
    from pydantic import BaseModel, HttpUrl, ValidationError

    class Hook(BaseModel):
        url: HttpUrl
        port: int

    # Built away from the failing line: a console traceback quotes the source line.
    payload = {"url": "https://u:pw1@h.example/?token=tok1", "port": "Bearer tok2"}
    for fmt in ("json", "console"):
        configure(fmt, "INFO", cache=False)
        try:
            Hook.model_validate(payload)
        except ValidationError:
            structlog.get_logger("t").exception("api.error", note="see https://a:pw3@h/x?k=tok3")
        out = capsys.readouterr().out
        assert "api.error" in out
        assert "ValidationError" in out
        for secret in ("pw1", "tok1", "tok2", "pw3", "tok3"):
            assert secret not in out, (fmt, secret)


def test_long_values_are_cut_in_our_lines_and_the_libraries(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    huge = "A" * 100_000
    structlog.get_logger("relay.ingest").info(
        "ingest.accepted", event_type=huge, headers={"x-big": huge, huge: "1"}, bytes=5
    )
    ours = last_line(json_logs)
    logging.getLogger("uvicorn.error").warning("Invalid request %s", huge)
    theirs = last_line(json_logs)
    cut = "A" * MAX_VALUE_CHARS + f"...[{100_000 - MAX_VALUE_CHARS} more chars]"
    assert ours["event_type"] == ours["headers"]["x-big"] == cut
    assert list(ours["headers"]) == ["x-big", cut]
    assert ours["bytes"] == 5
    assert theirs["event"] == "Invalid request " + cut[: MAX_VALUE_CHARS - 16] + (
        f"...[{100_016 - MAX_VALUE_CHARS} more chars]"
    )


def test_values_at_the_bound_and_exceptions_are_left_alone(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    try:
        raise ValueError("x" * 5000)
    except ValueError:
        structlog.get_logger("t").exception("api.error", path="/" + "p" * (MAX_VALUE_CHARS - 1))
    line = last_line(json_logs)
    assert line["path"] == "/" + "p" * (MAX_VALUE_CHARS - 1)
    assert "ValueError" in json.dumps(line["exception"])
