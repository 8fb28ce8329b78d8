"""API tokens as records (pure): what a token is, how its secret is made and checked.

A token's secret is ``<id>.<43 random characters>`` (256 bits): the id says which record to
read, the rest is compared, in constant time, with the digest kept in that record. Only the
digest is stored, so a Redis dump hands out no usable token. With 256 random bits nobody can
search for a secret by its digest, so a fast keyed hash (HMAC-SHA256) is enough and every
request's check stays cheap (bcrypt or argon2 guard low-entropy passwords, and would cost
tens of milliseconds per request here).

    >>> minted = mint(TokenIn(name="ci", role=Role.VIEWER), now_ms=0)
    >>> minted.token.id == minted.secret.split(".")[0], minted.token.matches(minted.secret)
    (True, True)
    >>> minted.token.matches(minted.secret + "x")
    False
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relay.domain.access import Access, Role
from relay.domain.ids import new_id
from relay.domain.models import SOURCE_NAME_PATTERN

# Domain separation: this digest is of nothing but an API token's secret.
_KEY = b"relay-api-token-v1"
_SECRET = re.compile(r"(tok_[0-9A-HJKMNP-TV-Z]{26})\.([A-Za-z0-9_-]{43})")


def digest(secret: str) -> str:
    return hmac.new(_KEY, secret.encode(), hashlib.sha256).hexdigest()


def token_id_of(secret: str) -> str | None:
    """The id a presented secret claims, or None when it is not shaped like one."""
    found = _SECRET.fullmatch(secret)
    return found.group(1) if found else None


class TokenIn(BaseModel):
    """A token to create."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "payments-ci", "role": "operator", "sources": ["stripe"]}]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="Who or what holds it.")
    role: Role = Field(
        description="viewer reads; operator also retries, replays, pauses and tests; admin "
        "also manages sources, subscriptions and tokens."
    )
    sources: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Limit the token to these sources (absent: every source).",
    )
    expires_at: datetime | None = Field(
        default=None, description="RFC 3339; the token is refused from then on."
    )

    @field_validator("sources")
    @classmethod
    def _names(cls, sources: list[str] | None) -> list[str] | None:
        if sources is None:
            return None
        for name in sources:
            if not re.fullmatch(SOURCE_NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a source name")
        return sorted(set(sources))


class Token(BaseModel):
    """A stored token: everything but its secret, of which only the digest is kept."""

    id: str
    name: str
    role: Role
    sources: list[str] | None = None
    created_at: int
    expires_at: int | None = None
    created_by: str | None = Field(default=None, description="The token that made it.")
    digest: str

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(digest(secret), self.digest)

    def expired(self, now_ms: int) -> bool:
        return self.expires_at is not None and now_ms >= self.expires_at

    def access(self) -> Access:
        sources = None if self.sources is None else frozenset(self.sources)
        return Access(self.role, sources, token_id=self.id, name=self.name)


@dataclass(frozen=True, slots=True)
class Minted:
    token: Token
    secret: str


def mint(spec: TokenIn, now_ms: int, created_by: str | None = None) -> Minted:
    token_id = new_id("tok", now_ms)
    secret = f"{token_id}.{secrets.token_urlsafe(32)}"
    expires = spec.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)  # a time without a zone means UTC
    token = Token(
        id=token_id, name=spec.name, role=spec.role, sources=spec.sources, created_at=now_ms,
        expires_at=None if expires is None else int(expires.timestamp() * 1000),
        created_by=created_by, digest=digest(secret),
    )  # fmt: skip
    return Minted(token, secret)
