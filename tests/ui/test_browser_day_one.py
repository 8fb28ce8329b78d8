"""What a new user hit in the dashboard, in a real browser (Debian's chromium, Playwright)
against a real relay: delivery status in Events, the relay's own events filtered out,
subscriptions named by description and URL, hosts that do not resolve, an unknown page,
filter errors in the CLI's words, and an 800 px wide window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui import test_browser as base
from tests.ui.test_browser import AUTH, Relay, subscribe, unsubscribe

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

# One relay for this module, the same signed-in page as test_browser's.
relay = base.relay
browser = base.browser
page = base.page


@pytest.fixture
def signed_in(browser: Any, relay: Relay) -> Iterator[Any]:
    """A signed-in page that, unlike ``page``, lets the browser log an error status (a 404
    or 422 page is what these tests ask for)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=relay.url)
    tab = context.new_page()
    tab.goto("/ui/login")
    tab.fill("#token", base.TOKEN)
    tab.click("button[type=submit]")
    tab.wait_for_url("**/ui/overview")
    yield tab
    context.close()


def test_events_show_delivery_statuses_and_leave_out_the_relays_own(
    page: Any, relay: Relay
) -> None:
    sub_id = subscribe(relay, description="Billing day one")
    try:
        event_id = relay.ingest()
        relay.status(event_id, "succeeded")
        test = relay.api.post(f"/api/subscriptions/{sub_id}/test", headers=AUTH).json()
    finally:
        unsubscribe(relay, sub_id)
    page.goto("/ui/events")
    row = page.locator("#events tr", has=page.locator(f"a:text-is('{event_id}')"))
    assert row.locator("td.deliveries .badge.succeeded").inner_text() == "1 succeeded"
    # The subscription test's event (source _relay) is not among real webhooks...
    assert page.locator(f"a:text-is('{test['event_id']}')").count() == 0
    # ...unless asked for.
    page.check("#internal")
    page.click("form.filters button[type=submit]:text('Filter')")
    page.wait_for_url("**/ui/events?*internal=1*")
    assert page.locator(f"a:text-is('{test['event_id']}')").count() == 1
    assert page.locator("#internal").is_checked()


def test_deliveries_name_their_subscription(page: Any, relay: Relay) -> None:
    sub_id = subscribe(relay, description="Warehouse loader")
    try:
        relay.receiver.script(400)  # dead at once
        event_id = relay.ingest(event_type="order.created")
        relay.status(event_id, "dead")
        for path in (f"/ui/events/{event_id}", f"/ui/dead-letters?subscription_id={sub_id}"):
            page.goto(path)
            label = page.locator(".subscription").first
            assert "Warehouse loader" in label.inner_text(), path
            assert relay.receiver.url in label.inner_text(), path
            assert label.locator(f"a:text-is('{sub_id}')").count() == 1, path
        # Put it back, so the dead letter does not linger for the other tests.
        relay.api.post(
            "/api/dead-letters/replay", headers=AUTH, json={"subscription_id": sub_id}
        ).raise_for_status()
        relay.status(event_id, "succeeded")
    finally:
        unsubscribe(relay, sub_id)


def test_a_host_that_does_not_resolve_is_a_warning_not_ok(page: Any, relay: Relay) -> None:
    r = relay.api.post(
        "/api/subscriptions",
        headers=AUTH,
        json={"url": "https://hooks.nosuch.invalid/x", "sources": ["github"]},
    )
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]
    try:
        page.goto("/ui/subscriptions")
        row = page.locator(f"tr[id='{sub_id}']")
        assert row.get_attribute("data-state") == "warning"
        assert row.locator(".badge").inner_text() == "warning"
        assert "hooks.nosuch.invalid does not resolve" in row.locator(".warning-text").inner_text()
        page.goto("/ui/overview")  # among the subscriptions that need a look
        troubled = page.locator("#troubled tr", has=page.locator(f"a:text-is('{sub_id}')"))
        assert "does not resolve" in troubled.inner_text()
    finally:
        unsubscribe(relay, sub_id)


def test_an_unknown_page_is_a_page(signed_in: Any) -> None:
    page = signed_in
    answer = page.goto("/ui/no-such-page")
    assert answer.status == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "No page /ui/no-such-page" in page.locator("h1").inner_text()
    page.click("a:text('overview')")
    page.wait_for_url("**/ui/overview")


def test_a_bad_filter_says_rfc_3339_like_the_cli(signed_in: Any) -> None:
    page = signed_in
    answer = page.goto("/ui/events?since=yesterday")
    assert answer.status == 422
    assert "since must be an RFC 3339 time such as 2026-11-24T18:10:03Z" in page.inner_text("main")


def test_at_800_px_the_nav_is_one_line_and_chart_labels_are_readable(page: Any) -> None:
    page.set_viewport_size({"width": 800, "height": 700})
    page.goto("/ui/overview")
    header = page.locator("header.top").bounding_box()
    items = page.locator("header.top a, header.top .brand, header.top button")
    boxes = [items.nth(i).bounding_box() for i in range(items.count())]
    middles = [b["y"] + b["height"] / 2 for b in boxes]
    assert max(middles) - min(middles) < 3, f"the nav wrapped: {boxes}"
    assert header["height"] < 60, header
    # Every item inside the window, none scrolled out of sight.
    assert max(b["x"] + b["width"] for b in boxes) <= 800
    sizes = page.eval_on_selector_all(
        ".chart-frame .y-axis span, .chart-frame .x-axis span",
        "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))",
    )
    assert len(sizes) == 4
    assert min(sizes) >= 11, sizes
    peak = page.locator("#chart-peak").bounding_box()
    chart = page.locator("svg.chart").bounding_box()
    assert chart["width"] > 600
    assert peak["x"] < chart["x"]  # beside the plot, not drawn over it
