"""Every route, fuzzed from the OpenAPI document: no 5xx, and answers as documented; then
again with a token limited to one team's source, which must never see another team's data.

A bounded run (fixed seed, a few examples per operation) of the real app served by uvicorn
on 127.0.0.1 with a real Redis. ``benchmarks/schemathesis_run.py`` does the big run.
Deliveries the fuzzer provokes (subscription tests, best-effort fan-out) must not leave the
machine: the app's outbound client is swapped for one that refuses every host but loopback,
the stand-in for the internet this test may not call.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from config.settings import Settings
from relay.api.app import create_app
from relay.delivery import outbound
from relay.devtools.embedded_redis import free_port
from relay.domain.access import Role
from relay.domain.ids import new_id
from relay.domain.tokens import Token, digest
from relay.storage.keys import Keys
from tests.conftest import ADMIN_TOKEN, AUTH

EXAMPLES_PER_OPERATION = 8  # the big run (benchmarks/schemathesis_run.py) goes wide
# Checks that cannot hold on some paths, and why:
EXCLUDED = {
    # 503 while no worker runs (none does here): its documented answer.
    "/readyz": [not_a_server_error],
    # Schema-valid subscriptions may name sources that do not exist or hosts that resolve
    # only to blocked addresses: a documented 422 the schema cannot express.
    "/api/subscriptions": [positive_data_acceptance],
    "/api/subscriptions/{sub_id}": [positive_data_acceptance],
    # "Exactly one of event_id, body or raw_body" and the transform's shape are checked in
    # code, not said in the document (yet): schema-valid previews can be a 422.
    "/api/preview": [positive_data_acceptance],
    "/api/subscriptions/{sub_id}/preview": [positive_data_acceptance],
    # An expires_at already past is a 422 ("must lie in the future"), which a date-time
    # schema cannot say.
    "/api/tokens": [positive_data_acceptance],
    # A listener names a source that must exist; an attempt report is taken only by the
    # process whose stream waits for it (else a documented 409).
    "/api/listeners": [positive_data_acceptance],
    "/api/listeners/{sub_id}/deliveries/{delivery_id}/attempt": [positive_data_acceptance],
}
# Subscribers the fuzzer's subscriptions may reach: none but this machine.
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class LoopbackOnly(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in LOOPBACK:
            raise httpx.ConnectError(
                "the fuzz test sends nothing off this machine", request=request
            )
        return await self._inner.handle_async_request(request)


async def resolve_loopback_only(host: str, port: int) -> list[str]:
    """DNS is a third party too: the fuzzer's host names resolve nowhere but localhost."""
    if host != "localhost":
        raise OSError(f"{host}: not resolved in the fuzz test")
    return ["127.0.0.1"]


@pytest.fixture(scope="module")
def relay_base_url(redis_server_url: str) -> Iterator[str]:
    redis.Redis.from_url(redis_server_url).flushdb()
    app = create_app(
        Settings(
            redis_url=redis_server_url,
            admin_token=ADMIN_TOKEN,
            queue_name="relay:fuzz-queue",
            allowed_private_networks=("127.0.0.0/8", "::1/128"),
            # Schemathesis spoils the token on every /api route on purpose: that is not
            # guessing, and a 429 would hide the 401 it checks for.
            auth_guess_burst=1_000_000,
        )
    )
    port = free_port()
    server = uvicorn.Server(
        # log_config=None: uvicorn must not reconfigure the logging the other tests check.
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        assert thread.is_alive(), "uvicorn stopped while starting"
        time.sleep(0.05)
    services = app.state.services
    services.attempter.sender = outbound.Sender(LoopbackOnly(), services.settings.address_guard)
    services.subscriptions.resolve = resolve_loopback_only
    base = f"http://127.0.0.1:{port}"
    # Something to find: a source and a subscription the fuzzer can read, change and delete.
    with httpx.Client(base_url=base, headers=AUTH, trust_env=False) as client:
        assert client.put("/api/sources/github", json={}).status_code == 201
        created = client.post(
            "/api/subscriptions", json={"url": "http://127.0.0.1:9/", "sources": ["github"]}
        )
        assert created.status_code == 201, created.text
    yield base
    server.should_exit = True
    thread.join(timeout=15)


# The document the app serves; building the app touches no Redis (that is its lifespan).
# Streams that never end (an SSE tail, a listener's stream) are left out: nothing to compare
# an endless body with; tests/faults/test_listen_tail.py runs them with real clients.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(admin_token=ADMIN_TOKEN)).openapi()
).exclude(path_regex=r"^/api/(tail|listeners/\{sub_id\}/stream)$")


class _Bearer:
    """A token, given the way schemathesis knows: its own probes take it off (or spoil it)
    to check that every /api route requires it."""

    secret: str

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return self.secret

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.auth()
class AdminToken(_Bearer):
    secret = ADMIN_TOKEN


FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ
def test_every_route_answers_as_documented_and_never_5xx(
    case: schemathesis.Case, relay_base_url: str
) -> None:
    case.call_and_validate(base_url=relay_base_url, excluded_checks=EXCLUDED.get(case.path, []))


# --- the same with a scoped token -----------------------------------------------------------


@dataclass
class Scoped:
    secret: str
    foreign: list[str]  # what the token must never be shown: platform's ids and source name


@pytest.fixture(scope="module")
def scoped(relay_base_url: str, redis_server_url: str) -> Scoped:
    """Payments (``stripe``) and platform (``github``), each with a subscription and an
    event; a payments admin token."""
    with httpx.Client(base_url=relay_base_url, headers=AUTH, trust_env=False) as client:
        foreign = []
        for source in ("stripe", "github"):
            client.put(f"/api/sources/{source}", json={}).raise_for_status()
            sub = client.post(
                "/api/subscriptions", json={"url": "http://127.0.0.1:9/", "sources": [source]}
            )
            event = client.post(f"/ingest/{source}", content=b"{}",
                                headers={"content-type": "application/json"})  # fmt: skip
            assert event.status_code == 202, event.text
            if source == "github":
                foreign += [sub.json()["id"], event.json()["event_id"], '"github"']
    # Stored as POST /api/tokens stores one, with a secret known before the examples are
    # generated (at collection, before any fixture runs).
    token = Token(id=SCOPED_SECRET.split(".")[0], name="payments", role=Role.ADMIN,
                  sources=["stripe"], created_at=0, digest=digest(SCOPED_SECRET))  # fmt: skip
    redis.Redis.from_url(redis_server_url).set(Keys.token(token.id), token.model_dump_json())
    return Scoped(SCOPED_SECRET, foreign)


SCOPED_SECRET = f"{new_id('tok')}.{secrets.token_urlsafe(32)}"
scoped_schema = schemathesis.openapi.from_dict(
    create_app(Settings(admin_token=ADMIN_TOKEN)).openapi()
)


@scoped_schema.auth()
class ScopedToken(_Bearer):
    secret = SCOPED_SECRET


@scoped_schema.include(path_regex="^/api/").parametrize()
@FUZZ
def test_a_scoped_token_never_gets_a_5xx_nor_another_teams_data(
    case: schemathesis.Case, relay_base_url: str, scoped: Scoped
) -> None:
    # Valid data naming another team's source is a 403, an object outside the scope a 404:
    # refusals the schema cannot express, so a valid request need not be accepted here.
    response = case.call_and_validate(
        base_url=relay_base_url, excluded_checks=[positive_data_acceptance]
    )
    if response.status_code < 400:  # a refusal may echo what the caller sent, nothing more
        for foreign in scoped.foreign:
            assert foreign not in response.text, f"{case.method} {case.path}: {foreign}"
