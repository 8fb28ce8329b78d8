"""Who may do what (pure): roles, and sources as the scope of a token.

A caller is an :class:`Access`: the bootstrap ``RELAY_ADMIN_TOKEN`` (an admin with no
scope), or a token record with a role and, optionally, the sources it is limited to.

- ``viewer`` reads; ``operator`` also acts on deliveries and on subscriptions' state;
  ``admin`` also creates, changes and deletes sources, subscriptions and tokens.
- With ``sources``, a token sees those sources, their events, the subscriptions whose
  sources all lie within the scope (never a ``"*"`` one), and those subscriptions'
  deliveries. Anything else answers as if it did not exist.

    >>> payments = Access(Role.OPERATOR, frozenset({"stripe"}), token_id="tok_1", name="ci")
    >>> payments.sees_source("stripe"), payments.sees_source("github")
    (True, False)
    >>> payments.sees_subscription(["*"]), payments.allows(Role.ADMIN)
    (False, False)
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

WILDCARD = "*"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        """Whether this role may do what ``other`` may."""
        return self.rank >= other.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Access:
    """A caller's role and scope. ``sources`` None: every source, present and future."""

    role: Role
    sources: frozenset[str] | None = None
    token_id: str | None = None  # None: the bootstrap RELAY_ADMIN_TOKEN
    name: str = "RELAY_ADMIN_TOKEN"

    @property
    def scoped(self) -> bool:
        return self.sources is not None

    def allows(self, needed: Role) -> bool:
        return self.role.includes(needed)

    def sees_source(self, name: str) -> bool:
        return self.sources is None or name in self.sources

    def sees_subscription(self, sources: Collection[str]) -> bool:
        """A subscription is in scope when every source it names is; ``"*"`` means sources
        made later too, so it is outside every scoped token."""
        if self.sources is None:
            return True
        return bool(sources) and WILDCARD not in sources and all(s in self.sources for s in sources)

    def covers(self, role: Role, sources: Collection[str] | None) -> bool:
        """Whether a token with this role and scope would be no wider than this caller: a
        token cannot mint (or see) a token with more power than its own."""
        if not self.role.includes(role):
            return False
        if self.sources is None:
            return True
        return sources is not None and all(s in self.sources for s in sources)


BOOTSTRAP = Access(Role.ADMIN)
