"""The admin API: bearer auth, problem details, sources and subscriptions."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import AUTH, create_source, create_subscription


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": "Basic dGVzdA=="}],
)
async def test_admin_api_needs_the_token(api: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, path in [
        ("GET", "/api/subscriptions"),
        ("POST", "/api/subscriptions"),
        ("GET", "/api/sources"),
        ("PUT", "/api/sources/x"),
        ("GET", "/api/events/evt_x"),
        ("GET", "/api/deliveries/dlv_x"),
    ]:
        r = await api.request(method, path, headers=headers, json={})
        assert r.status_code == 401, (method, path)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"


async def test_admin_api_is_off_without_a_token(make_settings) -> None:
    from relay.api.app import create_app
    from tests.conftest import running_app

    async with running_app(create_app(make_settings(admin_token=None))) as api:
        r = await api.get("/api/subscriptions", headers=AUTH)
        assert r.status_code == 503
        assert "RELAY_ADMIN_TOKEN" in r.json()["detail"]


async def test_subscription_lifecycle_and_secret_shown_once(api: httpx.AsyncClient) -> None:
    await create_source(api, "github")
    await create_source(api, "stripe")
    created = await create_subscription(
        api,
        "https://example.test/hooks?k=1",
        sources=["github", "stripe"],
        event_types=["push"],
        description="CI",
        timeout_s=5,
        retry={"max_attempts": 3},
    )
    assert created["secret"].startswith("whsec_")
    sub_id = created["id"]
    assert sub_id.startswith("sub_")
    assert created["mode"] == "reliable"
    assert created["enabled"] is True

    got = (await api.get(f"/api/subscriptions/{sub_id}", headers=AUTH)).json()
    assert "secret" not in got
    assert got["retry"]["max_attempts"] == 3
    listed = (await api.get("/api/subscriptions", headers=AUTH)).json()["data"]
    assert [s["id"] for s in listed] == [sub_id]
    assert created["secret"] not in str(listed)

    r = await api.patch(
        f"/api/subscriptions/{sub_id}", json={"sources": ["stripe"], "enabled": False}, headers=AUTH
    )
    assert r.status_code == 200
    assert r.json()["sources"] == ["stripe"]
    assert r.json()["enabled"] is False
    assert r.json()["url"] == "https://example.test/hooks?k=[REDACTED]"

    assert (await api.delete(f"/api/subscriptions/{sub_id}", headers=AUTH)).status_code == 204
    r = await api.get(f"/api/subscriptions/{sub_id}", headers=AUTH)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.test/x", "sources": ["github"]},
        {"url": "not a url", "sources": ["github"]},
        {"url": "http://example.test/x", "sources": []},
        {"url": "http://example.test/x", "sources": ["github"], "mode": "sometimes"},
        {"url": "http://example.test/x", "sources": ["github"], "headers": {"Webhook-Id": "x"}},
        {"url": "http://example.test/x", "sources": ["github"], "headers": {"X-A": "a\r\nb"}},
        {"url": "http://example.test/x", "sources": ["github"], "unknown": 1},
        {"url": "http://example.test/x", "sources": ["github"], "retry": {"max_attempts": 0}},
    ],
)
async def test_bad_subscriptions_are_422_problems(
    api: httpx.AsyncClient, body: dict[str, object]
) -> None:
    r = await api.post("/api/subscriptions", json=body, headers=AUTH)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"]
    assert (await api.get("/api/subscriptions", headers=AUTH)).json()["data"] == []


async def test_malformed_json_is_a_4xx_problem(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/subscriptions",
        content=b"{not json",
        headers={**AUTH, "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_sources_crud(api: httpx.AsyncClient) -> None:
    r = await api.put("/api/sources/shop.eu-1", json={"description": "EU shop"}, headers=AUTH)
    assert r.status_code == 201
    assert r.json()["verification"] == {"scheme": "none"}
    r = await api.put("/api/sources/shop.eu-1", json={"description": "EU"}, headers=AUTH)
    assert r.status_code == 200
    await create_source(api)
    names = [s["name"] for s in (await api.get("/api/sources", headers=AUTH)).json()["data"]]
    assert names == ["github", "shop.eu-1"]
    assert (await api.get("/api/sources/shop.eu-1", headers=AUTH)).json()["description"] == "EU"
    assert (await api.delete("/api/sources/shop.eu-1", headers=AUTH)).status_code == 204
    assert (await api.get("/api/sources/shop.eu-1", headers=AUTH)).status_code == 404
    assert (await api.delete("/api/sources/shop.eu-1", headers=AUTH)).status_code == 404
    bad = await api.put("/api/sources/bad name!", json={}, headers=AUTH)
    assert bad.status_code == 422
    bad = await api.put("/api/sources/x", json={"verification": {"scheme": "nope"}}, headers=AUTH)
    assert bad.status_code == 422


async def test_unknown_ids_are_404(api: httpx.AsyncClient) -> None:
    for path in ["/api/events/evt_missing", "/api/deliveries/dlv_missing"]:
        r = await api.get(path, headers=AUTH)
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"


async def test_openapi_documents_every_route_with_examples_and_problems(
    api: httpx.AsyncClient,
) -> None:
    doc = (await api.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in [
        "/ingest/{source}",
        "/api/sources/{name}",
        "/api/subscriptions",
        "/api/subscriptions/{sub_id}/rotate-secret",
        "/api/subscriptions/{sub_id}/pause",
        "/api/events",
        "/api/events/{event_id}/body",
        "/api/events/{event_id}/replay",
        "/api/deliveries",
        "/api/deliveries/{delivery_id}/retry",
        "/api/dead-letters",
        "/api/dead-letters/replay",
        "/healthz",
        "/readyz",
        "/metrics",
    ]:
        assert path in paths, path
    create = paths["/api/subscriptions"]["post"]
    assert "application/problem+json" in create["responses"]["401"]["content"]
    schemas = doc["components"]["schemas"]
    assert schemas["SubscriptionIn"]["examples"][0]["sources"] == ["github"]
    assert schemas["SourceIn"]["examples"][0]["verification"]["scheme"] == "github"
    ingest = paths["/ingest/{source}"]["post"]["responses"]
    assert {"200", "202", "401", "404", "413"} <= set(ingest)
