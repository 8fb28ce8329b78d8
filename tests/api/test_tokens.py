"""API tokens: created once, kept as a digest, revoked everywhere at once, audited; guessing
is slowed and seen. The role x scope matrix is in test_access_matrix.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from config.settings import Settings
from relay.api.app import create_app
from relay.devtools.embedded_redis import free_port
from tests.conftest import ADMIN_TOKEN, AUTH, create_source, running_app


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def make_token(api: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    r = await api.post("/api/tokens", json={"name": "ci", "role": "viewer", **spec}, headers=AUTH)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_a_token_is_shown_once_and_kept_as_a_digest(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    with capture_logs() as logs:
        created = await make_token(api, name="payments-ci", role="operator", sources=["stripe"])
        secret = created["token"]
        assert secret.startswith(created["id"] + ".")
        assert created["role"] == "operator"
        assert created["sources"] == ["stripe"]
        assert created["last_used_at"] is None

        listed = (await api.get("/api/tokens", headers=AUTH)).json()["data"]
        one = (await api.get(f"/api/tokens/{created['id']}", headers=AUTH)).json()
        assert [t["id"] for t in listed] == [created["id"]]
        assert (await api.get("/api/subscriptions", headers=bearer(secret))).status_code == 200
        used = (await api.get(f"/api/tokens/{created['id']}", headers=AUTH)).json()
    for answer in (listed[0], one, used):
        assert "token" not in answer
        assert "digest" not in answer
        assert secret not in str(answer)
    assert used["last_used_at"] is not None
    dump = b"".join([await redis.dump(k) or b"" for k in await redis.keys("*")])
    assert secret.encode() not in dump
    assert secret.split(".")[1].encode() not in dump
    assert secret not in repr(logs)


async def test_revoked_and_expired_tokens_fail_at_once(api: httpx.AsyncClient) -> None:
    created = await make_token(api)
    assert (await api.get("/api/sources", headers=bearer(created["token"]))).status_code == 200
    assert (await api.delete(f"/api/tokens/{created['id']}", headers=AUTH)).status_code == 204
    r = await api.get("/api/sources", headers=bearer(created["token"]))
    assert r.status_code == 401
    assert (await api.delete(f"/api/tokens/{created['id']}", headers=AUTH)).status_code == 404

    soon = datetime.now(UTC) + timedelta(milliseconds=300)
    short = await make_token(api, expires_at=soon.isoformat())
    assert (await api.get("/api/sources", headers=bearer(short["token"]))).status_code == 200
    time.sleep(0.35)
    assert (await api.get("/api/sources", headers=bearer(short["token"]))).status_code == 401
    past = await api.post(
        "/api/tokens",
        json={"name": "x", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"},
        headers=AUTH,
    )
    assert past.status_code == 422


async def test_a_token_cannot_make_a_wider_one(api: httpx.AsyncClient) -> None:
    await create_source(api, "stripe")
    admin = bearer((await make_token(api, role="admin", sources=["stripe"]))["token"])
    for spec in (
        {"role": "admin"},  # unscoped
        {"role": "viewer", "sources": ["stripe", "github"]},
    ):
        r = await api.post("/api/tokens", json={"name": "x", **spec}, headers=admin)
        assert r.status_code == 403, r.text
    r = await api.post(
        "/api/tokens", json={"name": "x", "role": "operator", "sources": ["stripe"]}, headers=admin
    )
    assert r.status_code == 201
    assert r.json()["created_by"] is not None
    star = {"url": "https://example.test/", "sources": ["*"]}
    assert (await api.post("/api/subscriptions", json=star, headers=admin)).status_code == 403
    # Its listing shows only the tokens it could have made (not the unscoped bootstrap's).
    listed = (await api.get("/api/tokens", headers=admin)).json()["data"]
    assert all(t["sources"] == ["stripe"] for t in listed)


async def test_every_write_logs_one_audit_line(api: httpx.AsyncClient) -> None:
    created = await make_token(api, name="payments-admin", role="admin", sources=["stripe"])
    with capture_logs() as logs:
        await api.put("/api/sources/stripe", json={}, headers=bearer(created["token"]))
        await api.delete("/api/sources/github", headers=bearer(created["token"]))
        await api.get("/api/sources", headers=bearer(created["token"]))
    audits = [e for e in logs if e["event"] == "audit"]
    assert [(a["action"], a["status"], a["outcome"]) for a in audits] == [
        ("put_source", 201, "succeeded"),
        ("delete_source", 404, "refused"),
    ]
    assert audits[0]["actor_id"] == created["id"]
    assert audits[0]["actor"] == "payments-admin"
    assert audits[0]["role"] == "admin"
    assert audits[0]["scope"] == ["stripe"]
    assert audits[0]["targets"] == {"name": "stripe"}
    assert created["token"] not in repr(logs)

    other = await make_token(api, sources=["stripe"])
    with capture_logs() as logs:
        r = await api.delete(f"/api/tokens/{other['id']}", headers=bearer(created["token"]))
    assert r.status_code == 204
    [revoked] = [e for e in logs if e["event"] == "audit"]
    assert revoked["action"] == "revoke_token"
    assert revoked["targets"] == {"tok_id": other["id"]}


def _client(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://relay")


async def test_guessing_is_throttled_per_address_and_logged_once(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())
    async with running_app(app), _client(app, "10.0.0.66") as bad, _client(app, "10.0.0.7") as ok:
        with capture_logs() as logs:
            statuses = [
                (await bad.get("/api/sources", headers=bearer(f"guess-{n}"))).status_code
                for n in range(40)
            ]
            right_but_blocked = await bad.get("/api/sources", headers=AUTH)
            other = await ok.get("/api/sources", headers=AUTH)
            login = await bad.post("/ui/login", data={"token": "guess"})
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    assert right_but_blocked.status_code == 429  # not even looked at: no oracle
    assert int(right_but_blocked.headers["retry-after"]) >= 1
    assert other.status_code == 200  # one client does not lock out the others
    assert login.status_code == 429
    failed = [e for e in logs if e["event"] == "auth.failed"]
    assert len(failed) == 1
    assert failed[0]["client"] == "10.0.0.66"
    assert "guess" not in repr(logs)


# --- two API processes --------------------------------------------------------------------


def _serve(redis_url: str, port: int, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(RELAY_REDIS_URL=redis_url, RELAY_ADMIN_TOKEN=ADMIN_TOKEN, RELAY_PORT=str(port),
               RELAY_LOG_FORMAT="json", **extra)  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "relay.cli", "serve"], env=env, stdout=out, stderr=out
        )


@pytest.fixture
def two_apis(redis_url: str, tmp_path: Path) -> Iterator[tuple[list[httpx.Client], list[Path]]]:
    ports = [free_port(), free_port()]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_serve(redis_url, port, log) for port, log in zip(ports, logs, strict=True)]
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=10) for p in ports]
    try:
        deadline = time.monotonic() + 60
        for client in clients:
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API processes did not start"
                time.sleep(0.1)
        yield clients, logs
    finally:
        for client in clients:
            client.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)


def test_a_revoked_token_fails_on_the_next_request_in_every_process(
    two_apis: tuple[list[httpx.Client], list[Path]],
) -> None:
    (a, b), logs = two_apis
    r = a.post("/api/tokens", json={"name": "ops", "role": "operator"}, headers=AUTH)
    assert r.status_code == 201
    token_id, secret = r.json()["id"], r.json()["token"]
    for api in (a, b):  # both processes know it (and have read it once)
        assert api.get("/api/subscriptions", headers=bearer(secret)).status_code == 200
    assert b.delete(f"/api/tokens/{token_id}", headers=AUTH).status_code == 204
    for api in (a, b):
        assert api.get("/api/subscriptions", headers=bearer(secret)).status_code == 401
    a.get("/api/sources", headers=bearer("tok_01JD3Y9T0W6Y7Q1G8B3C5D7E9F.made-up-guess"))
    for client in (a, b):
        client.close()
    captured = b"".join(log.read_bytes() for log in logs)
    lines = [json.loads(line) for line in captured.splitlines() if line.startswith(b"{")]
    [revoked] = [e for e in lines if e["event"] == "audit" and e["action"] == "revoke_token"]
    assert revoked["targets"] == {"tok_id": token_id}  # as written, after redaction
    assert revoked["actor"] == "RELAY_ADMIN_TOKEN"
    assert secret.encode() not in captured
    assert secret.split(".")[1].encode() not in captured
    assert b"made-up-guess" not in captured
    assert ADMIN_TOKEN.encode() not in captured


def test_behind_a_trusted_proxy_guessing_is_counted_per_named_client(
    redis_url: str, tmp_path: Path
) -> None:
    """Through a trusted proxy every request comes from one address: the throttle counts the
    client the proxy names, as the ingest limits do, so a guesser does not lock out the rest."""
    port, log = free_port(), tmp_path / "api.log"
    proc = _serve(redis_url, port, log, RELAY_TRUSTED_PROXIES="127.0.0.1/32",
                  RELAY_CLIENT_IP_HEADER="X-Forwarded-For")  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if api.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.1)
            guesser = {"X-Forwarded-For": "203.0.113.66"}
            statuses = [
                api.get("/api/sources", headers={**guesser, **bearer(f"guess-{n}")}).status_code
                for n in range(25)
            ]
            other = api.get("/api/sources", headers={"X-Forwarded-For": "198.51.100.7", **AUTH})
            blocked = api.get("/api/sources", headers={**guesser, **AUTH})
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    assert other.status_code == 200
    assert blocked.status_code == 429
    lines = [json.loads(x) for x in log.read_bytes().splitlines() if x.startswith(b"{")]
    [failed] = [e for e in lines if e["event"] == "auth.failed"]
    assert failed["client"] == "203.0.113.66"
