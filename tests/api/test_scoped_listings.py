"""Listings, totals and bulk actions of a scoped token hold only what is in its scope."""

from __future__ import annotations

from typing import Any

import httpx

from relay.devtools.receiver import Receiver
from tests.conftest import AUTH, WorkerRun, create_source, get, ingest


async def _team(api: httpx.AsyncClient, source: str, url: str) -> str:
    await create_source(api, source)
    body = {"url": url, "sources": [source], "retry": {"max_attempts": 1}}
    r = await api.post("/api/subscriptions", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    sub_id: str = r.json()["id"]
    return sub_id


async def _token(api: httpx.AsyncClient, role: str, sources: list[str]) -> dict[str, str]:
    r = await api.post("/api/tokens", json={"name": role, "role": role, "sources": sources},
                       headers=AUTH)  # fmt: skip
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['token']}"}


async def test_dead_letters_total_replay_and_purge_stay_in_scope(
    api: httpx.AsyncClient, receiver: Receiver, run_worker: WorkerRun
) -> None:
    stripe_sub = await _team(api, "stripe", receiver.url)
    github_sub = await _team(api, "github", receiver.url)
    receiver.default.status = 400  # not retried: dead at once
    for _ in range(2):
        await ingest(api, source="stripe")
        await ingest(api, source="github")
    await run_worker()
    assert (await get(api, "/api/dead-letters"))["total"] == 4

    payments = await _token(api, "operator", ["stripe"])
    seen = (await api.get("/api/dead-letters", headers=payments)).json()
    assert seen["total"] == 2
    assert {d["subscription_id"] for d in seen["data"]} == {stripe_sub}

    replayed = await api.post("/api/dead-letters/replay", json={}, headers=payments)
    assert replayed.json()["requeued"] == 2
    assert replayed.json()["remaining"] == 0
    left: dict[str, Any] = await get(api, "/api/dead-letters")
    assert left["total"] == 2
    assert {d["subscription_id"] for d in left["data"]} == {github_sub}

    await run_worker()  # stripe's die again
    purged = await api.delete("/api/dead-letters", headers=payments)
    assert purged.json()["purged"] == 2
    assert (await get(api, "/api/dead-letters"))["total"] == 2  # github's are untouched


async def test_listings_page_across_the_sources_of_the_scope(api: httpx.AsyncClient) -> None:
    for source in ("stripe", "adyen", "github"):
        await create_source(api, source)
    sent = [await ingest(api, source=s) for s in ("stripe", "github", "adyen", "github", "stripe")]
    mine = [e for e, s in zip(sent, ("stripe", "github", "adyen", "github", "stripe"),
                              strict=True) if s != "github"]  # fmt: skip
    payments = await _token(api, "viewer", ["stripe", "adyen"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/api/events", params=params, headers=payments)).json()
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == mine[::-1]  # newest first, each once, none of github's
    only = await api.get("/api/events", params={"source": "github"}, headers=payments)
    assert only.json()["data"] == []
    sources = (await api.get("/api/sources", headers=payments)).json()["data"]
    assert sorted(s["name"] for s in sources) == ["adyen", "stripe"]


async def test_an_events_page_lists_only_deliveries_in_scope(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await create_source(api, "stripe")
    spec = {"url": receiver.url, "sources": ["stripe"]}
    mine = (await api.post("/api/subscriptions", json=spec, headers=AUTH)).json()["id"]
    everything = await api.post(
        "/api/subscriptions", json={"url": receiver.url, "sources": ["*"]}, headers=AUTH
    )
    assert everything.status_code == 201
    event_id = await ingest(api, source="stripe")
    assert len((await get(api, f"/api/events/{event_id}"))["deliveries"]) == 2

    payments = await _token(api, "operator", ["stripe"])
    seen = (await api.get(f"/api/events/{event_id}", headers=payments)).json()
    assert [d["subscription_id"] for d in seen["deliveries"]] == [mine]

    # A replay with a scoped token goes only to its subscriptions.
    replayed = await api.post(f"/api/events/{event_id}/replay", json={}, headers=payments)
    assert [d["subscription_id"] for d in replayed.json()["deliveries"]] == [mine]
    named = await api.post(
        f"/api/events/{event_id}/replay",
        json={"subscription_ids": [everything.json()["id"]]},
        headers=payments,
    )
    assert named.status_code == 404


async def test_the_status_filter_reads_only_deliveries_in_scope(
    api: httpx.AsyncClient, receiver: Receiver, run_worker: WorkerRun
) -> None:
    await _team(api, "stripe", receiver.url)
    refusing = Receiver()
    refusing.default.status = 400
    try:
        spec = {"url": refusing.url, "sources": ["*"], "retry": {"max_attempts": 1}}
        assert (await api.post("/api/subscriptions", json=spec, headers=AUTH)).status_code == 201
        event_id = await ingest(api, source="stripe")
        await run_worker()
    finally:
        refusing.close()
    payments = await _token(api, "viewer", ["stripe"])
    for status, found in (("succeeded", [event_id]), ("dead", [])):
        assert [e["id"] for e in (await get(api, "/api/events", status=status))["data"]] == [
            event_id
        ]
        listed = await api.get("/api/events", params={"status": status}, headers=payments)
        assert [e["id"] for e in listed.json()["data"]] == found, status
