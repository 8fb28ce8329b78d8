"""The dashboard over HTTP, in process: sign-in, sessions, CSRF, headers, hostile content.

The browser tests (test_browser.py) drive the same pages in chromium; these check what a
browser cannot easily show: cookie flags, refused actions and the exact bytes of answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from structlog.testing import capture_logs

from config.settings import Settings
from relay.api.app import create_app
from relay.devtools.receiver import Receiver
from relay.storage import Store
from relay.ui import pages
from tests.conftest import (
    ADMIN_TOKEN,
    AUTH,
    WorkerRun,
    create_source,
    create_subscription,
    get,
    ingest,
    running_app,
)

FORM = {"content-type": "application/x-www-form-urlencoded"}
HOSTILE = "<script>alert(1)</script>"


async def sign_in(api: httpx.AsyncClient) -> str:
    """Signs the client in; returns the session's CSRF token, read from a page as a browser
    would."""
    r = await api.post("/ui/login", data={"token": ADMIN_TOKEN})
    assert r.status_code == 303, r.text
    page = (await api.get("/ui/subscriptions")).text
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


async def test_pages_ask_for_sign_in_first(api: httpx.AsyncClient) -> None:
    for path in ("/ui/overview", "/ui/events", "/ui/subscriptions", "/ui/dead-letters"):
        r = await api.get(path)
        assert (r.status_code, r.headers["location"]) == (303, "/ui/login")
    # The admin API's bearer token is not a dashboard session.
    assert (await api.get("/ui/overview", headers=AUTH)).status_code == 303
    # An htmx refresh after the session ended sends the whole page to the sign-in form.
    r = await api.get("/ui/overview/panel", headers={"hx-request": "true"})
    assert r.headers["hx-redirect"] == "/ui/login"


async def test_sign_in_sets_a_strict_session_cookie(api: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        wrong = await api.post("/ui/login", data={"token": "guess"})
        right = await api.post("/ui/login", data={"token": ADMIN_TOKEN})
    assert wrong.status_code == 401
    assert "That is not a valid token." in wrong.text
    assert "set-cookie" not in wrong.headers
    assert right.status_code == 303
    cookie = right.headers["set-cookie"]
    for flag in ("HttpOnly", "SameSite=strict", "Path=/ui", "Max-Age=28800"):
        assert flag in cookie
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS the cookie is Secure
    assert ADMIN_TOKEN not in cookie
    assert [e["event"] for e in logs if e["event"].startswith(("ui.", "auth."))] == [
        "auth.failed",
        "ui.signed_in",
    ]
    assert ADMIN_TOKEN not in repr(logs)
    assert "guess" not in repr(logs)
    assert (await api.get("/ui/overview")).status_code == 200


async def test_sign_in_over_https_marks_the_cookie_secure(api: httpx.AsyncClient) -> None:
    r = await api.post("https://relay/ui/login", data={"token": ADMIN_TOKEN})
    assert "Secure" in r.headers["set-cookie"]


async def test_actions_need_the_csrf_token(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    csrf = await sign_in(api)
    path = f"/ui/subscriptions/{sub['id']}/pause"
    for data in ({}, {"csrf_token": "forged"}):
        r = await api.post(path, data=data)
        assert r.status_code == 403
        assert r.json()["detail"].startswith("the form's CSRF token")
    assert (await get(api, f"/api/subscriptions/{sub['id']}"))["paused"] is False
    r = await api.post(path, data={"csrf_token": csrf})
    assert (r.status_code, r.headers["location"]) == (303, "/ui/subscriptions")
    assert (await get(api, f"/api/subscriptions/{sub['id']}"))["paused"] is True
    # htmx sends it as a header instead.
    r = await api.post(f"/ui/subscriptions/{sub['id']}/resume", headers={"x-csrf-token": csrf})
    assert r.status_code == 303
    assert (await get(api, f"/api/subscriptions/{sub['id']}"))["paused"] is False


async def test_sign_out_ends_the_session(api: httpx.AsyncClient, store: Store) -> None:
    csrf = await sign_in(api)
    cookie = api.cookies["relay_session"]
    assert not (await api.post("/ui/logout", data={})).is_success  # CSRF applies here too
    r = await api.post("/ui/logout", data={"csrf_token": csrf})
    assert (r.status_code, r.headers["location"]) == (303, "/ui/login")
    # A copy of the cookie kept by someone else is dead too: the session is gone from Redis.
    api.cookies.set("relay_session", cookie, domain="relay", path="/ui")
    assert (await api.get("/ui/overview")).status_code == 303


async def test_every_page_is_locked_down(api: httpx.AsyncClient) -> None:
    await sign_in(api)
    for path in ("/ui/overview", "/ui/events", "/ui/sources", "/ui/login"):
        headers = (await api.get(path)).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


async def test_hostile_content_is_text(
    api: httpx.AsyncClient, receiver: Receiver, run_worker: WorkerRun
) -> None:
    await create_source(api)
    description = f'<img src=x onerror="{HOSTILE}">'
    sub = await create_subscription(api, receiver.url, description=description)
    receiver.script(httpx.codes.BAD_REQUEST)  # dead at once: its excerpt is shown too
    receiver.default.body = HOSTILE.encode()
    body = b'{"html": "<a href=\\"javascript:alert(2)\\">x</a>"}'
    event_id = await ingest(api, event_type=HOSTILE, body=body)
    await run_worker()
    await sign_in(api)
    pages = [
        (await api.get(f"/ui/events/{event_id}")).text,
        (await api.get("/ui/events")).text,
        (await api.get("/ui/subscriptions")).text,
        (await api.get("/ui/dead-letters")).text,
    ]
    for page in pages:
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert 'href="javascript:' not in page
    event_page = pages[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in event_page  # the event type, as text
    assert "javascript:alert(2)" in event_page  # the body, shown but inert
    assert sub["id"] in pages[2]


async def test_a_deeply_nested_json_body_shows_as_sent(api: httpx.AsyncClient) -> None:
    await create_source(api)
    body = b'{"a":' * 1001 + b"1" + b"}" * 1001  # 1,001 deep: past Python's recursion
    event_id = await ingest(api, body=body)
    await sign_in(api)
    r = await api.get(f"/ui/events/{event_id}")
    assert r.status_code == 200
    assert body.decode().replace('"', "&#34;") in r.text


async def test_raw_body_is_a_download_not_a_page(api: httpx.AsyncClient) -> None:
    await create_source(api)
    body = b"<html><script>alert(1)</script></html>"
    r = await api.post("/ingest/github", content=body,
                       headers={"X-GitHub-Event": "push", "content-type": "text/html"})  # fmt: skip
    await sign_in(api)
    r = await api.get(f"/ui/events/{r.json()['event_id']}/body")
    assert r.content == body
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")


async def test_bad_filters_are_a_clear_4xx(api: httpx.AsyncClient) -> None:
    await sign_in(api)
    r = await api.get("/ui/events", params={"since": "yesterday"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("since must be an RFC 3339 time such as ")
    assert (await api.get("/ui/events", params={"status": "lost"})).status_code == 422
    assert (await api.get("/ui/events/evt_nope")).status_code == 404
    r = await api.post("/ui/subscriptions/sub_nope/pause", data={"csrf_token": "x"})
    assert r.status_code == 403


async def test_docs_need_no_internet(api: httpx.AsyncClient) -> None:
    page = (await api.get("/docs")).text
    assert "http://" not in page
    assert "https://" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/ui/static/vendor/swagger-ui/{asset}" in page
        r = await api.get(f"/ui/static/vendor/swagger-ui/{asset}")
        assert r.status_code == 200
        assert len(r.content) > 100_000
    assert (await api.get("/ui/static/vendor/htmx/htmx.min.js")).status_code == 200
    assert (await api.get("/ui/static/swagger-init.js")).status_code == 200


async def test_dashboard_off_without_admin_token(make_settings: Callable[..., Settings]) -> None:
    async with running_app(create_app(make_settings(admin_token=None))) as api:
        assert (await api.post("/ui/login", data={"token": ""})).status_code == 503
        api.cookies.set("relay_session", "anything", domain="relay", path="/ui")
        assert (await api.get("/ui/overview")).status_code == 503


async def test_a_new_admin_token_ends_every_session(
    api: httpx.AsyncClient, make_settings: Callable[..., Settings]
) -> None:
    await sign_in(api)
    cookie = api.cookies["relay_session"]
    async with running_app(create_app(make_settings(admin_token="rotated"))) as other:
        other.cookies.set("relay_session", cookie, domain="relay", path="/ui")
        assert (await other.get("/ui/overview")).status_code == 303


async def test_overview_counts_the_last_hour(
    api: httpx.AsyncClient, receiver: Receiver, run_worker: WorkerRun
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url, retry={"max_attempts": 2})
    receiver.script(200, 503, 503)  # first event: succeeded; second: a retry, then dead
    await ingest(api)
    await run_worker()
    await ingest(api)
    await run_worker()
    # A rejection is counted by this process only (nothing is stored for it).
    assert (await api.post("/ingest/nowhere", content=b"{}")).status_code == 404
    await sign_in(api)
    page = (await api.get("/ui/overview/panel")).text
    for label, value in (("Accepted", 2), ("Succeeded", 1), ("Retries", 1), ("Died", 1)):
        assert f'{label}, last hour</div><div class="value">{value}<' in page
    assert '<rect class="dead"' in page
    assert "<title>1 dead</title>" in page
    assert 'id="depth-dead"><a href="/ui/dead-letters">1<' in page
    # Its newest delivery died: it is listed among those that need a look.
    assert '<span class="badge failing">failing</span>' in page


async def test_subscription_actions_show_their_results(
    api: httpx.AsyncClient, receiver: Receiver, store: Store
) -> None:
    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    csrf = await sign_in(api)
    base = f"/ui/subscriptions/{sub['id']}"
    page = (await api.post(f"{base}/test", data={"csrf_token": csrf})).text
    assert "The receiver answered HTTP <strong>200</strong>" in page
    assert receiver.wait_for(1)[0].headers["x-relay-event-type"] == "relay.test"

    r = await api.post(f"{base}/rotate-secret", data={"csrf_token": csrf})
    stored = await store.subscriptions.get(sub["id"])
    assert stored is not None
    assert stored.secret != sub["secret"]
    assert f'id="new-secret">{stored.secret}</p>' in r.text  # shown once, here
    assert r.headers["cache-control"] == "no-store"
    assert stored.secret not in (await api.get("/ui/subscriptions")).text

    await api.patch(f"/api/subscriptions/{sub['id']}", json={"enabled": False}, headers=AUTH)
    assert 'data-state="disabled"' in (await api.get("/ui/subscriptions")).text
    r = await api.post(f"{base}/enable", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert (await get(api, f"/api/subscriptions/{sub['id']}"))["enabled"] is True
    assert (await api.post(f"{base}/explode", data={"csrf_token": csrf})).status_code == 404
    r = await api.post("/ui/subscriptions/sub_nope/pause", data={"csrf_token": csrf})
    assert r.status_code == 404


async def test_retry_one_dead_letter(
    api: httpx.AsyncClient, receiver: Receiver, run_worker: WorkerRun
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.script(400)
    await ingest(api)
    await run_worker()
    csrf = await sign_in(api)
    page = (await api.get("/ui/dead-letters")).text
    assert 'id="dead-total">(1)<' in page
    delivery_id = (await get(api, "/api/dead-letters"))["data"][0]["id"]
    r = await api.post(
        f"/ui/deliveries/{delivery_id}/retry", data={"csrf_token": csrf, "back": "dead-letters"}
    )
    assert (r.status_code, r.headers["location"]) == (303, "/ui/dead-letters")
    await run_worker()
    assert len(receiver.wait_for(2)) == 2
    assert (await get(api, f"/api/deliveries/{delivery_id}"))["status"] == "succeeded"
    assert 'id="dead-total">(0)<' in (await api.get("/ui/dead-letters")).text


async def test_bulk_replay_works_through_batches(
    api: httpx.AsyncClient, receiver: Receiver, run_worker: WorkerRun, monkeypatch: Any
) -> None:
    monkeypatch.setattr(pages, "REPLAY_BATCH", 2)
    await create_source(api)
    await create_subscription(api, receiver.url)
    receiver.script(400, 400, 400)
    for _ in range(3):
        await ingest(api)
    await run_worker()
    csrf = await sign_in(api)
    form = {"csrf_token": csrf, "subscription_id": "", "since": "", "until": ""}
    # htmx posts each batch and swaps in the progress, which asks for the next batch.
    r = await api.post("/ui/dead-letters/replay", data=form, headers={"hx-request": "true"})
    assert "<h1>" not in r.text
    assert 'data-done="no"' in r.text
    assert 'id="replay-done">2<' in r.text
    assert 'hx-trigger="load"' in r.text
    after = r.text.split('name="after" value="')[1].split('"')[0]
    assert (await get(api, "/api/dead-letters"))["total"] == 1
    # Without htmx, a whole page.
    r = await api.post("/ui/dead-letters/replay", data={**form, "after": after, "done": "2"})
    assert "<h1>Replay dead letters</h1>" in r.text
    assert 'data-done="yes"' in r.text
    assert 'id="replay-done">3<' in r.text
    assert (await get(api, "/api/dead-letters"))["total"] == 0
    await run_worker()
    assert len(receiver.wait_for(6)) == 6


async def test_sources_show_scheme_and_rejections_never_secrets(api: httpx.AsyncClient) -> None:
    secret = "gh-secret-value"
    await create_source(api, verification={"scheme": "github", "secrets": [secret]})
    r = await api.post("/ingest/github", content=b"{}", headers={"X-GitHub-Event": "push"})
    assert r.status_code == 401
    await sign_in(api)
    page = (await api.get("/ui/sources")).text
    assert '<span class="badge ok">github</span>' in page
    assert "1 secret<" in page
    assert secret not in page
    assert r.json()["reason"] in page


async def test_events_filter_and_page_like_the_api(
    api: httpx.AsyncClient, monkeypatch: Any
) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    await create_source(api)
    ids = [await ingest(api, event_type=t) for t in ("push", "issues", "push", "push")]
    await sign_in(api)
    first = (await api.get("/ui/events", params={"event_type": "push"})).text
    assert [i in first for i in ids] == [False, False, True, True]  # newest first
    next_url = first.split('id="next-page" href="')[1].split('"')[0].replace("&amp;", "&")
    assert "event_type=push" in next_url
    second = (await api.get(next_url)).text
    assert [i in second for i in ids] == [True, False, False, False]
    r = await api.get("/ui/events", params={"id": f" {ids[1]} "})
    assert (r.status_code, r.headers["location"]) == (303, f"/ui/events/{ids[1]}")


async def test_a_browser_gets_refusals_as_pages(api: httpx.AsyncClient) -> None:
    await sign_in(api)
    page = {"accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
    r = await api.get("/ui/events", params={"since": "<b>yesterday</b>"}, headers=page)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"
    assert "since must be an RFC 3339 time" in r.text
    assert "<b>yesterday" not in r.text
    r = await api.get("/ui/events", params={"status": "lost"}, headers=page)
    assert r.status_code == 422
    assert "query.status: Input should be" in r.text
    r = await api.post("/ui/subscriptions/sub_x/pause", data={}, headers=page)
    assert r.status_code == 403
    assert "CSRF token is missing or stale" in r.text


async def test_a_token_session_acts_within_its_role_and_ends_when_revoked(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await create_source(api, "stripe")
    sub = await create_subscription(api, receiver.url, sources=["stripe"])
    spec = {"name": "payments-ops", "role": "operator", "sources": ["stripe"]}
    made = (await api.post("/api/tokens", json=spec, headers=AUTH)).json()
    with capture_logs() as logs:
        assert (await api.post("/ui/login", data={"token": made["token"]})).status_code == 303
        page = (await api.get("/ui/subscriptions")).text
        assert 'data-action="pause"' in page
        assert 'data-action="rotate-secret"' not in page  # an admin's button
        marker = 'name="csrf_token" value="'
        start = page.index(marker) + len(marker)
        csrf = {"csrf_token": page[start : page.index('"', start)]}
        paused = await api.post(f"/ui/subscriptions/{sub['id']}/pause", data=csrf)
        rotated = await api.post(f"/ui/subscriptions/{sub['id']}/rotate-secret", data=csrf)
    assert paused.status_code == 303
    assert rotated.status_code == 403  # hidden, and refused anyway
    [audit, refused] = [e for e in logs if e["event"] == "audit"]
    assert (audit["action"], audit["actor"], audit["outcome"]) == (
        "ui.subscription_action", "payments-ops", "succeeded",
    )  # fmt: skip
    assert refused["status"] == 403
    assert made["token"] not in repr(logs)

    assert (await api.delete(f"/api/tokens/{made['id']}", headers=AUTH)).status_code == 204
    after = await api.get("/ui/subscriptions")
    assert (after.status_code, after.headers["location"]) == (303, "/ui/login")
