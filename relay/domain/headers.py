"""The syntax of HTTP header names that sources and subscriptions configure (pure)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

# RFC 9110 token characters: a name the relay sends or looks up must be one a server accepts.
# The length bound keeps one configured name from bloating every stored record.
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~\-]{1,128}$")]
