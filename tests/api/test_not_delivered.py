""" "Why didn't my event arrive?": ``GET /api/events/{id}``, the dashboard's event page and
``relay events show`` name every subscription of the event's source that got no delivery,
and why (``not_delivered``)."""

from __future__ import annotations

from typing import Any

import httpx

from relay.devtools.receiver import Receiver
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription, get, ingest
from tests.ui.test_pages import sign_in


def reasons(detail: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        n["subscription_id"]: (n["reason"], n["decided"], n["detail"])
        for n in detail["not_delivered"]
    }


async def test_each_subscription_without_a_delivery_says_why(
    api: httpx.AsyncClient, receiver: Receiver, run_worker: WorkerRun
) -> None:
    await create_source(api)
    taken = await create_subscription(api, receiver.url, event_types=["pull_request"])
    # The glob the README's walk-through once had: GitHub's type is "pull_request".
    globbed = await create_subscription(api, receiver.url, event_types=["push", "pull_request.*"])
    filtered = await create_subscription(
        api, receiver.url, filter={"body": "action", "eq": "closed"}
    )
    disabled = await create_subscription(api, receiver.url, enabled=False)
    doomed = await create_subscription(api, receiver.url)
    everywhere = await create_subscription(api, receiver.url, sources=["*"], event_types=["issues"])
    elsewhere = await create_subscription(api, receiver.url, sources=["_relay.ops"])

    event_id = await ingest(api, event_type="pull_request", body=b'{"action": "opened"}')
    r = await api.delete(f"/api/subscriptions/{doomed['id']}", headers=AUTH)
    assert r.status_code == 204, r.text
    later = await create_subscription(api, receiver.url)
    await run_worker()  # delivers to `taken`, closes the deleted one's without a request

    detail = await get(api, f"/api/events/{event_id}")
    got = reasons(detail)
    assert got[globbed["id"]][:2] == ("event_type", "now")
    assert "'pull_request' matches none of: push, pull_request.*" in got[globbed["id"]][2]
    assert got[filtered["id"]][:2] == ("filter", "at_fan_out")
    assert "action" in got[filtered["id"]][2]
    assert got[disabled["id"]][:2] == ("disabled", "now")
    assert got[doomed["id"]][:2] == ("deleted", "now")
    assert got[everywhere["id"]][:2] == ("event_type", "now")
    assert got[later["id"]][:2] == ("created_after", "now")
    # Delivered, or not listening to this source at all: not listed.
    assert set(got) == {globbed["id"], filtered["id"], disabled["id"], doomed["id"],
                        everywhere["id"], later["id"]}  # fmt: skip
    assert elsewhere["id"] not in got
    assert [d["subscription_id"] for d in detail["deliveries"] if d["status"] == "succeeded"] == [
        taken["id"]
    ]
    [skipped] = detail["skipped"]  # as before, beside the explanation
    assert skipped["subscription_id"] == filtered["id"]
    assert len(receiver.requests) == 1

    # Changed since, so it would take the event now: said so, not passed over in silence.
    r = await api.patch(
        f"/api/subscriptions/{globbed['id']}", json={"event_types": ["*"]}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    again = reasons(await get(api, f"/api/events/{event_id}"))
    assert again[globbed["id"]][:2] == ("changed_after", "now")

    await sign_in(api)
    page = (await api.get(f"/ui/events/{event_id}")).text
    section = page[page.index('id="not-delivered"') :]
    for sub in (filtered, disabled, doomed, everywhere, later):
        assert sub["id"] in section
    assert "event type" in section  # the everywhere subscription's reason, spelled out
    assert "at fan-out" in section


async def test_an_event_every_subscription_got_explains_nothing(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await create_source(api)
    await create_subscription(api, receiver.url)
    event_id = await ingest(api)
    assert (await get(api, f"/api/events/{event_id}"))["not_delivered"] == []
