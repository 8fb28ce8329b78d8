"""What a scoped token may know of: the checks and listings routes share.

A token limited to some sources sees those sources and their events, the subscriptions whose
sources all lie within them (never a ``"*"`` one) and those subscriptions' deliveries.
Objects outside answer 404, as if they did not exist; an in-scope request that would reach
outside (a subscription naming another team's source) answers 403.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from relay.api.problems import Problem
from relay.domain.access import Access
from relay.domain.models import Subscription, UnusableSubscription

if TYPE_CHECKING:
    from relay.api.services import Services


async def sees_subscription(services: Services, access: Access, sub_id: str) -> bool:
    if not access.scoped:
        return True
    sub = await services.store.subscriptions.get(sub_id)
    return sub is not None and access.sees_subscription(sub.sources)


async def check_path(
    services: Services, access: Access, method: str, params: dict[str, Any]
) -> None:
    """404 for an object named in the path that this scoped token must not know of."""
    store = services.store
    for name, value in params.items():
        if name == "event_id":
            event = await store.events.get(value)
            if event is None or not access.sees_source(event.source):
                raise Problem(404, f"no event {value!r}")
        elif name == "delivery_id":
            owner = await store.deliveries.owner(value)
            if owner is None or not await sees_subscription(services, access, owner[0]):
                raise Problem(404, f"no delivery {value!r}")
        elif name == "sub_id":
            if not await sees_subscription(services, access, value):
                raise Problem(404, f"no subscription {value!r}")
        elif name == "name" and not access.sees_source(value):
            if method == "PUT":  # creating one: say why, whether or not it exists
                raise outside(f"source {value!r}")
            raise Problem(404, f"no source named {value!r}")
        elif name == "token_id":
            token = await store.tokens.get(value)
            if token is None or not access.covers(token.role, token.sources):
                raise Problem(404, f"no token {value!r}")


def outside(what: str) -> Problem:
    return Problem(403, f"{what} lies outside this token's sources")


def require_sources(access: Access, sources: Collection[str]) -> None:
    """403 unless a subscription with these sources would lie within the token's scope."""
    if not access.sees_subscription(sources):
        raise outside("a subscription with sources " + ", ".join(sorted(sources)))


def in_scope(
    access: Access, subs: Iterable[Subscription | UnusableSubscription]
) -> list[Subscription | UnusableSubscription]:
    return [s for s in subs if access.sees_subscription(s.sources)]


async def subscription_ids(services: Services, access: Access) -> tuple[str, ...] | None:
    """The ids of the subscriptions in scope; None: every one (an unscoped caller)."""
    if not access.scoped:
        return None
    return tuple(s.id for s in in_scope(access, await services.store.subscriptions.all()))


def source_names(access: Access) -> tuple[str, ...] | None:
    return None if access.sources is None else tuple(sorted(access.sources))
