"""Bad configuration is refused with a clear 422 (or 404) and nothing is stored for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from config.settings import Settings
from relay.api.app import create_app
from tests.conftest import AUTH, create_source, create_subscription, get, running_app


async def refused(api: httpx.AsyncClient, status: int, **spec: Any) -> str:
    body: dict[str, Any] = {"url": "http://127.0.0.1:9/", "sources": ["github"], **spec}
    r = await api.post("/api/subscriptions", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert (await get(api, "/api/subscriptions"))["data"] == []
    detail: str = r.json()["detail"] + str(r.json().get("errors", ""))
    return detail


async def test_a_url_too_long_once_normalised_is_422_not_a_poison_record(
    api: httpx.AsyncClient,
) -> None:
    await create_source(api)
    url = "http://127.0.0.1:9/" + "\u00e9" * 700  # 720 characters sent, 4,220 stored
    assert "once normalised" in await refused(api, 422, url=url)


async def test_unknown_sources_and_unclosed_globs_are_422(api: httpx.AsyncClient) -> None:
    await create_source(api)
    assert "'gihtub'" in await refused(api, 422, sources=["github", "gihtub"])
    assert "never closed" in await refused(api, 422, event_types=["pull_request.[opened"])
    sub = await create_subscription(api, "http://127.0.0.1:9/", event_types=["[[]x", "a.[!b]*"])
    r = await api.patch(f"/api/subscriptions/{sub['id']}", json={"sources": ["nope"]}, headers=AUTH)
    assert (r.status_code, (await get(api, f"/api/subscriptions/{sub['id']}"))["sources"]) == (
        422,
        ["github"],
    )
    # A source deleted later: its subscriptions keep the name and other edits still work.
    assert (await api.delete("/api/sources/github", headers=AUTH)).status_code == 204
    r = await api.patch(f"/api/subscriptions/{sub['id']}", json={"enabled": False}, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["sources"] == ["github"]


async def test_url_credentials_and_an_authorization_header_are_422(
    api: httpx.AsyncClient,
) -> None:
    """Both would go as Authorization: every attempt would fail; refused when written."""
    await create_source(api)
    with_password = "http://hook:s3cret@127.0.0.1:9/"
    bearer = {"Authorization": "Bearer t"}
    assert "keep one" in await refused(api, 422, url=with_password, headers=bearer)
    assert "keep one" in await refused(api, 422, url="http://hook@127.0.0.1:9/",
                                       headers={"authorization": "x"})  # fmt: skip

    # Each alone is fine; a PATCH that brings the other half is refused and changes nothing.
    basic = await create_subscription(api, with_password)
    token = await create_subscription(api, "http://127.0.0.1:9/", headers=bearer)
    for sub, change in ((basic, {"headers": bearer}), (token, {"url": with_password})):
        r = await api.patch(f"/api/subscriptions/{sub['id']}", json=change, headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "keep one" in r.json()["detail"]
    assert (await get(api, f"/api/subscriptions/{basic['id']}"))["headers"] == {}
    assert (await get(api, f"/api/subscriptions/{token['id']}"))["url"] == "http://127.0.0.1:9/"
    # Replacing one half by the other at once is an ordinary edit.
    r = await api.patch(
        f"/api/subscriptions/{token['id']}", json={"url": with_password, "headers": {}},
        headers=AUTH,
    )  # fmt: skip
    assert r.status_code == 200, r.text


@pytest.fixture
async def production_api(make_settings: Callable[..., Settings]) -> Any:
    """The API as `relay serve` runs it: only public addresses are allowed."""
    async with running_app(create_app(make_settings(allowed_private_networks=()))) as client:
        yield client


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_localhost_is_refused_like_127_0_0_1(
    production_api: httpx.AsyncClient, host: str
) -> None:
    await create_source(production_api)
    detail = await refused(production_api, 422, url=f"http://{host}:9000/hook")
    assert "is not a public address" in detail
    assert "RELAY_ALLOWED_PRIVATE_NETWORKS" in detail


async def test_a_name_that_does_not_resolve_yet_is_accepted_with_a_warning(
    production_api: httpx.AsyncClient,
) -> None:
    await create_source(production_api)
    sub = await create_subscription(production_api, "https://hooks.invalid/x")
    assert sub["warnings"] == [
        "hooks.invalid does not resolve (yet); deliveries fail until it does"
    ]
    r = await production_api.patch(
        f"/api/subscriptions/{sub['id']}", json={"url": "http://localhost/"}, headers=AUTH
    )
    assert r.status_code == 422
    assert "not a public address" in r.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/deliveries"),
        ("GET", "/api/dead-letters"),
        ("DELETE", "/api/dead-letters"),
        ("POST", "/api/dead-letters/replay"),
    ],
)
async def test_a_filter_on_a_subscription_that_never_existed_is_404(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    await create_source(api)
    sub = await create_subscription(api, "http://127.0.0.1:9/")
    for sub_id, status in (("sub_typo", 404), (sub["id"], 200)):
        if method == "POST":
            r = await api.post(path, json={"subscription_id": sub_id}, headers=AUTH)
        else:
            r = await api.request(method, path, params={"subscription_id": sub_id}, headers=AUTH)
        assert r.status_code == status, r.text
    assert "sub_typo" in (await api.get(path.replace("/replay", ""), headers=AUTH,
                                        params={"subscription_id": "sub_typo"})).text  # fmt: skip


async def test_a_post_without_json_content_type_says_what_is_expected(
    api: httpx.AsyncClient,
) -> None:
    r = await api.post(
        "/api/subscriptions",
        content=b'{"url": "http://127.0.0.1:9/", "sources": ["*"]}',
        headers={**AUTH, "content-type": "text/plain"},
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "expected a JSON body sent with content-type: application/json"
    r = await api.post(
        "/api/subscriptions",
        content=b'{"url": "\xff"}',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert (r.status_code, r.json()["errors"][0]["type"]) == (422, "json_invalid")


@pytest.mark.parametrize(
    "spec",
    [
        {"timeout_s": 5e-324},
        {"rate_limit": 5e-324},
        {"retry": {"max_attempts": 100, "initial_s": 0, "jitter_s": 0}},
        {"retry": {"max_wait_s": 1e-300}},
        {"headers": {"X-Webhook-Auth": "a"}, "public_headers": ["X-Webhook-Auth"]},
    ],
)
async def test_settings_that_would_hammer_or_leak_are_422(
    api: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    await create_source(api)
    await refused(api, 422, **spec)


async def test_a_tolerance_past_64_bits_is_422_not_500(api: httpx.AsyncClient) -> None:
    spec = {"verification": {"scheme": "stripe", "secrets": ["x"], "tolerance_s": 2**64}}
    r = await api.put("/api/sources/s", json=spec, headers=AUTH)
    assert r.status_code == 422
    assert (await get(api, "/api/sources"))["data"] == []


async def test_options_and_405_name_every_method_of_the_path(api: httpx.AsyncClient) -> None:
    r = await api.options("/api/subscriptions/sub_x")
    assert (r.status_code, r.headers["allow"]) == (204, "DELETE, GET, OPTIONS, PATCH")
    r = await api.post("/api/sources/x", headers=AUTH)
    assert (r.status_code, r.headers["allow"]) == (405, "DELETE, GET, OPTIONS, PUT")
    assert r.headers["content-type"] == "application/problem+json"
    assert (await api.options("/api/nothing-here")).status_code == 404


async def test_the_document_has_examples_and_describes_every_subscription_field(
    api: httpx.AsyncClient,
) -> None:
    doc = (await api.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for name in ("SubscriptionIn", "SubscriptionPatch", "SubscriptionView", "EventView",
                 "DeliveryView"):  # fmt: skip
        assert schemas[name].get("examples"), name
    for name in ("SubscriptionIn", "SubscriptionView"):
        undescribed = [f for f, s in schemas[name]["properties"].items() if "description" not in s]
        assert undescribed == [], (name, undescribed)
    assert "glob" in schemas["SubscriptionIn"]["properties"]["event_types"]["description"]
