"""What one HTTP attempt means for a delivery (pure).

>>> classify(AttemptResult(status_code=503)).verdict
<Verdict.RETRY: 'retry'>
>>> classify(AttemptResult(status_code=410)).disable_subscription
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

# Besides 5xx: the receiver timed out reading (408), is not ready yet (425), or asks us
# to slow down (429). Anything else outside 2xx is the receiver saying "never".
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class Verdict(StrEnum):
    SUCCESS = "success"
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The observable result of one HTTP try: a status code, or an error instead of one."""

    status_code: int | None = None
    error: str | None = None
    error_message: str | None = None
    response_excerpt: str = ""
    duration_ms: float = 0.0
    retry_after_s: float | None = None
    # The request could not even be made as configured (say, a header value that is not
    # valid HTTP): trying again cannot help.
    permanent: bool = False
    # False when the failure is the relay's own (a blocked address, a request it could not
    # build, an internal error): it says nothing about the subscriber's health.
    reached: bool = True


@dataclass(frozen=True, slots=True)
class Classification:
    verdict: Verdict
    disable_subscription: bool = False


def classify(result: AttemptResult) -> Classification:
    code = result.status_code
    if result.permanent:
        return Classification(Verdict.FAIL)
    if code is None:
        # No response at all (connect error, timeout, protocol error): try again later.
        return Classification(Verdict.RETRY)
    if 200 <= code < 300:
        return Classification(Verdict.SUCCESS)
    if code >= 500 or code in RETRYABLE_STATUSES:
        return Classification(Verdict.RETRY)
    return Classification(Verdict.FAIL, disable_subscription=code == 410)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value) if len(value) <= 12 else None
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        # A receiver's malformed header must never cost us the attempt's outcome.
        return None
