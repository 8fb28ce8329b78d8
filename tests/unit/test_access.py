"""Roles, scope, token secrets and the guess limiter: plain values, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from relay.domain.access import BOOTSTRAP, Access, Role
from relay.domain.guessing import GuessLimiter
from relay.domain.tokens import TokenIn, digest, mint, token_id_of

PAYMENTS = Access(Role.ADMIN, frozenset({"stripe"}), token_id="tok_1", name="payments")


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.OPERATOR, Role.OPERATOR, True),
        (Role.OPERATOR, Role.ADMIN, False),
        (Role.ADMIN, Role.VIEWER, True),
    ],
)
def test_roles_are_ordered(role: Role, needed: Role, allowed: bool) -> None:
    assert Access(role).allows(needed) is allowed


def test_a_subscription_is_in_scope_only_when_all_its_sources_are() -> None:
    assert PAYMENTS.sees_subscription(["stripe"])
    assert not PAYMENTS.sees_subscription(["stripe", "github"])
    assert not PAYMENTS.sees_subscription(["*"])  # sources made later are nobody's scope
    assert not PAYMENTS.sees_subscription([])
    assert BOOTSTRAP.sees_subscription(["*"])


def test_no_token_can_mint_a_wider_one() -> None:
    assert PAYMENTS.covers(Role.VIEWER, ["stripe"])
    assert not PAYMENTS.covers(Role.VIEWER, ["stripe", "github"])
    assert not PAYMENTS.covers(Role.VIEWER, None)  # unscoped is wider than any scope
    operator = Access(Role.OPERATOR)
    assert not operator.covers(Role.ADMIN, None)
    assert BOOTSTRAP.covers(Role.ADMIN, None)


def test_a_secret_is_kept_only_as_its_digest() -> None:
    minted = mint(TokenIn(name="ci", role=Role.VIEWER, sources=["stripe"]), now_ms=1_000)
    stored = minted.token.model_dump_json()
    assert minted.secret not in stored
    assert minted.secret.split(".")[1] not in stored
    assert minted.token.digest == digest(minted.secret)
    assert token_id_of(minted.secret) == minted.token.id
    assert minted.token.matches(minted.secret)
    assert not minted.token.matches(minted.secret[:-1] + ("A" if minted.secret[-1] != "A" else "B"))
    assert token_id_of("not-a-token") is None
    assert token_id_of(minted.secret + "x") is None


def test_expiry_and_source_names() -> None:
    at = datetime(2030, 1, 1)  # no zone: UTC
    minted = mint(TokenIn(name="x", role=Role.ADMIN, expires_at=at), now_ms=0)
    expiry = int(at.replace(tzinfo=UTC).timestamp() * 1000)
    assert minted.token.expires_at == expiry
    assert not minted.token.expired(expiry - 1)
    assert minted.token.expired(expiry)
    assert TokenIn(name="x", role=Role.VIEWER, sources=["b", "a", "b"]).sources == ["a", "b"]
    with pytest.raises(ValidationError):
        TokenIn(name="x", role=Role.VIEWER, sources=["*"])
    with pytest.raises(ValidationError):
        TokenIn(name="x", role=Role.VIEWER, sources=[])
    with pytest.raises(ValidationError):
        TokenIn.model_validate({"name": "x", "role": "root"})


def test_guessing_is_slowed_per_address_and_logged_once_per_interval() -> None:
    limiter = GuessLimiter(burst=3, per_s=1.0, log_interval_s=60)
    logged = [limiter.failed("10.0.0.1", 0.0) for _ in range(5)]
    assert logged == [1, None, None, None, None]  # one line for the first of the interval
    assert limiter.blocked("10.0.0.1", 0.0) == 1.0
    assert limiter.blocked("10.0.0.2", 0.0) == 0.0  # another client is not locked out
    assert limiter.blocked("10.0.0.1", 1.0) == 0.0  # the refill lets one more guess in
    assert limiter.failed("10.0.0.1", 61.0) == 5  # next interval: 4 unlogged, and this one


def test_the_limiter_forgets_the_oldest_addresses_past_its_bound() -> None:
    limiter = GuessLimiter(burst=1, per_s=0.001, max_clients=2)
    for address in ("a", "b", "c"):
        limiter.failed(address, 0.0)
    assert limiter.blocked("a", 0.0) == 0.0  # forgotten: memory stays bounded
    assert limiter.blocked("c", 0.0) > 0
