"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real
`relay serve`, `relay worker`, redis-server and receiver on 127.0.0.1.

One relay serves every scenario of this module (started once, stopped at the end).
RELAY_UPDATE_SCREENSHOTS=1 also rewrites the screenshots in docs/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.receiver import Receiver, Reply

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

TOKEN = "browser-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CHROMIUM = os.environ.get("RELAY_CHROMIUM", "/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[2] / "docs"
XSS = "<script>window.__xss = 1</script>"
IMG_XSS = '<img src=x onerror="window.__xss = 2; alert(2)">'

if not shutil.which(CHROMIUM):
    pytest.skip(
        f"no chromium at {CHROMIUM}: scripts/bootstrap installs Debian's (apt-get install "
        "chromium); it could not here",
        allow_module_level=True,
    )


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Relay:
    url: str
    api: httpx.Client
    receiver: Receiver

    def ingest(
        self, event_type: str = "push", body: bytes = b'{"ref": "main"}', **headers: str
    ) -> str:
        headers = {"X-GitHub-Event": event_type, "content-type": "application/json", **headers}
        r = self.api.post("/ingest/github", content=body, headers=headers)
        assert r.status_code == 202, r.text
        event_id: str = r.json()["event_id"]
        return event_id

    def delivery(self, event_id: str) -> dict[str, Any]:
        def fanned_out() -> dict[str, Any] | None:
            found = self.api.get(f"/api/events/{event_id}", headers=AUTH).json()["deliveries"]
            return found[0] if found else None

        return wait_until(fanned_out, f"{event_id}'s delivery")  # type: ignore[no-any-return]

    def status(self, event_id: str, status: str) -> None:
        def reached() -> bool:
            found = self.api.get(f"/api/events/{event_id}", headers=AUTH).json()["deliveries"]
            return bool(found) and found[0]["status"] == status

        wait_until(reached, f"{event_id}'s delivery to be {status}")


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "relay.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    port = free_port()
    receiver = Receiver()
    with EmbeddedRedis() as redis:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update(
            RELAY_REDIS_URL=redis.url, RELAY_ADMIN_TOKEN=TOKEN, RELAY_PORT=str(port),
            RELAY_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8", RELAY_LOG_FORMAT="json",
            RELAY_RETRY__MAX_ATTEMPTS="2", RELAY_RETRY__INITIAL_S="0.2",
            RELAY_RETRY__JITTER_S="0", RELAY_WORKER_POLL_DELAY_S="0.02",
            RELAY_STORED_HEADERS="x-github-event,x-hostile",
        )  # fmt: skip
        procs = [_start(["serve"], env), _start(["worker"], env)]
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        try:
            wait_until(lambda: _ready(api), "the relay and its worker to be ready", 60)
            api.put("/api/sources/github", headers=AUTH,
                    json={"event_type_header": "X-GitHub-Event"}).raise_for_status()  # fmt: skip
            yield Relay(f"http://127.0.0.1:{port}", api, receiver)
        finally:
            api.close()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            receiver.close()


def _ready(api: httpx.Client) -> bool:
    try:
        return api.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, relay: Relay) -> Iterator[Any]:
    """A signed-in page that fails the test on any dialog (an alert is a script that ran) and
    on any console error (a CSP violation is one: our own scripts must not need relaxing)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=relay.url)
    page = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on(
        "console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None
    )
    page.goto("/ui/overview")
    assert page.url.endswith("/ui/login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/overview")
    yield page
    assert dialogs == [], f"a dialog fired: {dialogs}"
    assert errors == [], f"the console had errors: {errors}"
    context.close()


def subscribe(relay: Relay, **spec: Any) -> str:
    body = {"url": relay.receiver.url, "sources": ["github"], **spec}
    r = relay.api.post("/api/subscriptions", headers=AUTH, json=body)
    assert r.status_code == 201, r.text
    sub_id: str = r.json()["id"]
    return sub_id


def unsubscribe(relay: Relay, sub_id: str) -> None:
    relay.api.delete(f"/api/subscriptions/{sub_id}", headers=AUTH).raise_for_status()


def test_sign_in_then_overview_and_sign_out(page: Any) -> None:
    assert page.locator("svg.chart").is_visible()
    assert page.locator("#workers .badge.live").count() >= 1
    # The Overview refreshes itself (htmx, every 5 s).
    with page.expect_response(lambda r: r.url.endswith("/ui/overview/panel"), timeout=15_000):
        pass
    cookie = next(c for c in page.context.cookies() if c["name"] == "relay_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    page.click("#sign-out")
    page.wait_for_url("**/ui/login")
    page.goto("/ui/events")
    assert page.url.endswith("/ui/login")


def test_find_an_event_by_id_and_see_its_attempts(page: Any, relay: Relay) -> None:
    sub_id = subscribe(relay, description="attempts")
    try:
        relay.receiver.script(Reply(503, b"busy, try later"), 200)
        event_id = relay.ingest()
        relay.status(event_id, "succeeded")
    finally:
        unsubscribe(relay, sub_id)
    page.goto("/ui/events")
    page.fill("input[name=id]", event_id)
    page.click("#find-event")
    page.wait_for_url(f"**/ui/events/{event_id}")
    attempts = page.locator("li.attempt")
    assert attempts.count() == 2
    assert "HTTP 503" in attempts.nth(0).inner_text()
    assert "busy, try later" in attempts.nth(0).locator("pre.excerpt").inner_text()
    assert "HTTP 200" in attempts.nth(1).inner_text()
    assert '"ref": "main"' in page.locator("#body").inner_text()


def test_replay_dead_letters_until_the_receiver_has_them(page: Any, relay: Relay) -> None:
    sub_id = subscribe(relay, description="dead letters")
    try:
        relay.receiver.script(400)  # not retried: dead at once
        event_id = relay.ingest(event_type="order.created")
        relay.status(event_id, "dead")
        before = len(relay.receiver.requests)
        page.goto(f"/ui/dead-letters?subscription_id={sub_id}")
        assert page.locator("#dead-total").inner_text() == "(1)"
        page.click("#replay-all")
        assert page.locator("#replay-total").inner_text() == "1"
        page.click("#confirm-replay")
        page.wait_for_selector("#replay-progress[data-done=yes]")
        # htmx swapped the progress into the confirmation page: no navigation happened.
        assert "subscription_id=" in page.url
        assert page.locator("#replay-done").inner_text() == "1"
        got = relay.receiver.wait_for(before + 1)[-1]
        assert got.headers["webhook-id"] == event_id
        relay.status(event_id, "succeeded")
    finally:
        unsubscribe(relay, sub_id)


def test_pause_and_resume_a_subscription(page: Any, relay: Relay) -> None:
    sub_id = subscribe(relay, description="pausing")
    row = page.locator(f"tr[id='{sub_id}']")
    try:
        page.goto("/ui/subscriptions")
        row.locator("button[data-action=pause]").click()
        page.wait_for_url("**/ui/subscriptions")
        assert row.get_attribute("data-state") == "paused"
        event_id = relay.ingest()
        assert relay.delivery(event_id)["status"] == "pending"
        row.locator("button[data-action=resume]").click()
        page.wait_for_url("**/ui/subscriptions")
        assert row.get_attribute("data-state") in ("ok", "failing")
        relay.status(event_id, "succeeded")
    finally:
        unsubscribe(relay, sub_id)


def test_screenshots(page: Any, relay: Relay) -> None:
    """The README's pictures, of a relay with some life in it."""
    if os.environ.get("RELAY_UPDATE_SCREENSHOTS") != "1":
        pytest.skip("RELAY_UPDATE_SCREENSHOTS=1 rewrites docs/dashboard-*.png")
    failing = Receiver()
    failing.default = Reply(500, b'{"error": "upstream database unavailable"}')
    subs = [
        subscribe(relay, description="Billing service", event_types=["push", "order.*"]),
        subscribe(relay, description="Analytics warehouse"),
        subscribe(relay, description="Legacy CRM", url=failing.url, retry={"max_attempts": 1}),
    ]
    try:
        relay.api.post(f"/api/subscriptions/{subs[1]}/pause", headers=AUTH).raise_for_status()
        events = [relay.ingest(t) for t in ("push", "order.created", "order.paid", "push")]
        for event_id in events:
            wait_until(lambda e=event_id: _settled(relay, e), f"{event_id} to settle")
        for name, path in (("overview", "/ui/overview"), ("events", "/ui/events"),
                           ("event", f"/ui/events/{events[1]}"),
                           ("subscriptions", "/ui/subscriptions"),
                           ("dead-letters", "/ui/dead-letters")):  # fmt: skip
            page.goto(path)
            page.screenshot(path=str(DOCS / f"dashboard-{name}.png"))
    finally:
        for sub_id in subs:
            unsubscribe(relay, sub_id)
        failing.close()


def _settled(relay: Relay, event_id: str) -> bool:
    """Every delivery of the event reached the status it will keep (paused ones wait)."""
    found = relay.api.get(f"/api/events/{event_id}", headers=AUTH).json()["deliveries"]
    return len(found) == 3 and sum(d["status"] in ("succeeded", "dead") for d in found) == 2


def test_hostile_content_stays_inert(page: Any, relay: Relay) -> None:
    sub_id = subscribe(relay, description=IMG_XSS)
    try:
        relay.receiver.script(Reply(400, XSS.encode(), {"content-type": "text/html"}))
        body = {"html": IMG_XSS, "link": "javascript:alert(3)"}
        event_id = relay.ingest(XSS, json.dumps(body).encode(), **{"x-hostile": IMG_XSS})
        relay.status(event_id, "dead")
        for path in ("/ui/overview", "/ui/events", f"/ui/events/{event_id}", "/ui/subscriptions",
                     "/ui/dead-letters"):  # fmt: skip
            page.goto(path)
            assert page.evaluate("window.__xss") is None, path
            assert page.locator("main script, main img").count() == 0, path
        page.goto(f"/ui/events/{event_id}")
        assert page.locator("#event-type").inner_text() == XSS
        assert IMG_XSS in page.locator("#headers").inner_text()
        assert "javascript:alert(3)" in page.locator("#body").inner_text()
        assert page.locator("a[href^='javascript']").count() == 0
        assert XSS in page.locator("pre.excerpt").inner_text()
    finally:
        unsubscribe(relay, sub_id)


def test_a_scoped_viewer_sees_only_its_sources_and_no_buttons(browser: Any, relay: Relay) -> None:
    """Payments' viewer token (source stripe) signs in: platform's github events and
    subscriptions are nowhere, figures count only stripe's, no action is offered, and the
    server refuses an action posted anyway."""
    relay.api.put("/api/sources/stripe", headers=AUTH, json={}).raise_for_status()
    github_sub = subscribe(relay, description="platform CI")
    stripe_sub = subscribe(relay, description="payments billing", sources=["stripe"])
    viewer = {"name": "payments-viewer", "role": "viewer", "sources": ["stripe"]}
    made = relay.api.post("/api/tokens", headers=AUTH, json=viewer)
    assert made.status_code == 201, made.text
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=relay.url)
    page = context.new_page()
    try:
        github_event = relay.ingest()
        stripe = relay.api.post("/ingest/stripe", content=b'{"type": "charge.succeeded"}',
                                headers={"content-type": "application/json"})  # fmt: skip
        stripe_event = stripe.json()["event_id"]
        stripe_delivery = relay.delivery(stripe_event)["id"]

        page.goto("/ui/login")
        page.fill("#token", made.json()["token"])
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/overview")
        signed_in = page.locator("#signed-in-as").inner_text()
        assert "payments-viewer" in signed_in
        assert "sources stripe" in signed_in
        assert page.locator("svg.chart").count() == 0  # relay-wide counters: not its scope
        assert page.locator("#scoped-figures").is_visible()

        page.goto("/ui/events")
        listed = page.locator("main").inner_text()
        assert stripe_event in listed
        assert github_event not in listed
        hidden = page.goto(f"/ui/events/{github_event}")
        assert hidden is not None
        assert hidden.status == 404  # as if it did not exist
        assert github_event in page.locator("main").inner_text()

        page.goto(f"/ui/events/{stripe_event}")
        assert page.locator("main button").count() == 0  # no replay, no retry
        page.goto("/ui/subscriptions")
        assert page.locator(f"tr[id='{stripe_sub}']").count() == 1
        assert page.locator(f"tr[id='{github_sub}']").count() == 0
        assert page.locator("button[data-action]").count() == 0
        page.goto("/ui/sources")
        assert "stripe" in page.locator("main").inner_text()
        assert "github" not in page.locator("main").inner_text()

        # The buttons are hidden, and the server refuses the action anyway.
        csrf = json.loads(page.locator("body").get_attribute("hx-headers"))["x-csrf-token"]
        refused = page.request.post(
            f"/ui/deliveries/{stripe_delivery}/retry", form={"csrf_token": csrf}
        )
        assert refused.status == 403
    finally:
        context.close()
        unsubscribe(relay, github_sub)
        unsubscribe(relay, stripe_sub)
