from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from relay.observability.logs import REDACTED, configure, redact, scrub_url


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


def test_the_access_line_is_opt_in(capsys: pytest.CaptureFixture[str], reset_logging: None) -> None:
    configure("json", "INFO")
    # uvicorn asks this for each connection: without a handler it never formats the line.
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    logging.getLogger("uvicorn.access").info("%s", '127.0.0.1:5 - "GET / HTTP/1.1" 200')
    assert capsys.readouterr().out == ""
