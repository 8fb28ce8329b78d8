"""What one `relay tail` shows: its filters, and a scoped token's sources (issue 18)."""

from __future__ import annotations

from relay.delivery.tail import TailFilter


def _event(source: str) -> dict[str, object]:
    return {"kind": "event", "source": source, "event_id": "evt_1"}


def _attempt(source: str, sub: str, status: str = "succeeded") -> dict[str, object]:
    return {"kind": "attempt", "source": source, "subscription_id": sub, "status": status}


def test_an_unscoped_tail_shows_everything_its_filters_allow() -> None:
    shown = TailFilter()
    assert shown.shows(_event("github"))
    assert shown.shows(_attempt("github", "sub_any"))
    assert not TailFilter(source="stripe").shows(_event("github"))
    failed = TailFilter(failed_only=True)
    assert not failed.shows(_event("stripe"))
    assert not failed.shows(_attempt("stripe", "sub_a"))
    assert failed.shows(_attempt("stripe", "sub_a", "dead"))


def test_a_scoped_tail_shows_only_its_sources_and_the_subscriptions_it_sees() -> None:
    shown = TailFilter(within=frozenset({"stripe"}), subscriptions=frozenset({"sub_pay"}))
    assert shown.shows(_event("stripe"))
    assert not shown.shows(_event("github"))
    assert shown.shows(_attempt("stripe", "sub_pay"))
    # A "*" subscription belongs to no team: its attempts stay out of a scoped tail, even
    # for the team's own events, as its deliveries stay out of the team's listings.
    assert not shown.shows(_attempt("stripe", "sub_everything"))
    assert not shown.shows(_attempt("github", "sub_pay"))
    # Naming another team's source filters to nothing, and reveals nothing.
    assert not TailFilter(source="github", within=frozenset({"stripe"})).shows(_event("github"))
