from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relay.domain.outcome import AttemptResult, Verdict, classify, parse_retry_after


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.SUCCESS),
        (204, Verdict.SUCCESS),
        (299, Verdict.SUCCESS),
        (301, Verdict.FAIL),  # redirects are not followed
        (400, Verdict.FAIL),
        (401, Verdict.FAIL),
        (404, Verdict.FAIL),
        (408, Verdict.RETRY),
        (410, Verdict.FAIL),
        (425, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (599, Verdict.RETRY),
    ],
)
def test_status_codes(status: int, verdict: Verdict) -> None:
    assert classify(AttemptResult(status_code=status)).verdict is verdict


def test_no_response_is_retried() -> None:
    assert classify(AttemptResult(error="ConnectError")).verdict is Verdict.RETRY


def test_only_410_disables() -> None:
    assert classify(AttemptResult(status_code=410)).disable_subscription
    assert not classify(AttemptResult(status_code=404)).disable_subscription
    assert not classify(AttemptResult(status_code=500)).disable_subscription


NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Tue, 24 Nov 2026 12:01:30 GMT", 90.0),
        ("Tue, 24 Nov 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("Mon, 01 Jan 99999999999 00:00:00 GMT", None),  # OverflowError inside the parser
        ("\u00b2", None),  # a digit to str.isdigit(), not to float()
        ("9" * 40, None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds
