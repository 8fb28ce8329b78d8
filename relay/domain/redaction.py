"""Which names carry credentials, and what is shown instead of their values (pure).

API answers (a subscription's extra headers) and log lines (fields and header maps) share
this one rule, so a value hidden in one place cannot show in the other.

    >>> [looks_secret(n) for n in ("X-Api-Key", "Authorization", "admin_token", "X-Team")]
    [True, True, True, False]
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

# Substrings, not whole names: senders spell them every way (X-Api-Key, apikey, api_key,
# x-auth-token, Set-Cookie). "key" also takes names that hold none, such as an idempotency
# key: showing too little is the safe mistake.
_SECRET_NAME = re.compile(r"authorization|token|secret|key|password|cookie|signature", re.I)


def looks_secret(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None
