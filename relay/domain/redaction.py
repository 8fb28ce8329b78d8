"""Which names carry credentials, and what is shown instead of their values (pure).

API answers (a subscription's extra headers) and log lines (fields and header maps) share
this one rule, so a value hidden in one place cannot show in the other.

    >>> [looks_secret(n) for n in ("X-Api-Key", "Authorization", "admin_token", "X-Team")]
    [True, True, True, False]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

REDACTED = "[REDACTED]"

# Substrings, not whole names: senders spell them every way (X-Api-Key, apikey, api_key,
# x-auth-token, X-Webhook-Auth, Set-Cookie). "key" also takes names that hold none, such as
# an idempotency key, and "auth" takes "author": showing too little is the safe mistake.
_SECRET_NAME = re.compile(r"auth|token|secret|key|passw|cookie|signature|credential|session", re.I)


def looks_secret(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def mask_url(url: str) -> str:
    """A URL as answers show it: a password in its userinfo and the values of its query
    string are masked, the rest (parameter names included) shows, so an operator still sees which
    URL it is.

        >>> mask_url("https://relay:pw@hooks.example.com/in?token=abc&team=x")
        'https://relay:[REDACTED]@hooks.example.com/in?token=[REDACTED]&team=[REDACTED]'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{colon and ':' + REDACTED}@{hostport}"
    query = "&".join(
        # A bare ``?s3cr3t`` may be a token by itself.
        f"{name}={REDACTED}" if sep else REDACTED
        for name, sep, _ in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's (or FastAPI's) errors, where and why, without the input they quote: it
    may be a secret."""
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in errors
    ]


def describe(exc: ValidationError) -> str:
    """One line of where and why, for logs and records (no input values)."""
    return "; ".join(
        f"{'.'.join(map(str, err['loc'])) or 'record'}: {err['msg']}"
        for err in validation_errors(exc.errors())
    )
