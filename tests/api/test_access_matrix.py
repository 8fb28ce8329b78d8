"""Every admin route, every role, and an object in and out of a scoped token's sources.

The routes come from the OpenAPI document: a route that declares no role, or that this
table does not know how to call, fails ``test_every_route_declares_a_role``. Each route's
cases run against a world of two teams, payments (source ``stripe``) and platform
(``github``), each with a subscription, an event and a delivery; a failure lists every case
of the route that went wrong. The tokens under test are limited to
``stripe``, or unscoped; expectations:

- an object outside the scope named in the path: 404, whatever the role;
- otherwise a role below the route's: 403;
- otherwise what the route answers on success, and for a scoped token an answer that
  names nothing of platform's (ids, source name, token id).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from config.settings import Settings
from relay.api.app import create_app
from relay.api.auth import REQUIRED_ROLE
from relay.devtools.receiver import Receiver
from relay.domain.access import Role
from tests.conftest import AUTH, create_source, ingest, running_app


@dataclass
class World:
    receiver: str
    events: dict[bool, str]  # in scope (True: stripe) -> event id
    deliveries: dict[bool, str]
    subs: dict[bool, str]
    tokens: dict[bool, str]  # target tokens (viewer, stripe / github)
    listeners: dict[bool, str]  # `relay listen` subscriptions
    callers: dict[str, str]  # principal -> bearer secret

    def foreign(self) -> list[str]:
        """Ids of platform's objects: no answer to a payments token may name one."""
        return [
            self.events[False],
            self.deliveries[False],
            self.subs[False],
            self.tokens[False],
            self.listeners[False],
        ]


Call = tuple[str, dict[str, str] | None, Any]  # path, query, JSON body
# How long an endless stream is given to refuse before it counts as open. A refusal comes
# before the first byte; httpx's ASGI transport would otherwise wait for the stream's end.
ENDLESS_S = 1.0


@dataclass(frozen=True)
class Route:
    call: Callable[[World, bool], Call]
    # The outside object is in the path: 404 before the role is looked at.
    in_path: bool = True
    # What a scoped token with the role gets for the outside object named in the query or
    # body (a listing filtered to nothing answers 200; creating outside the scope, 403).
    outside: int = 404
    # What an allowed caller gets, when not a 2xx: an attempt report for a delivery no
    # stream waits for is a 409, past the role and the scope.
    allowed: int | None = None
    # An endless stream (Server-Sent Events): allowed when it is still open after a moment.
    endless: bool = False


def _sub(path: str, body: Any = None) -> Route:
    return Route(lambda w, i: (path.format(w.subs[i]), None, body))


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/events"): Route(
        lambda w, i: ("/api/events", {"source": "stripe" if i else "github"}, None),
        in_path=False,
        outside=200,
    ),
    ("GET", "/api/events/{event_id}"): Route(
        lambda w, i: (f"/api/events/{w.events[i]}", None, None)
    ),
    ("GET", "/api/events/{event_id}/body"): Route(
        lambda w, i: (f"/api/events/{w.events[i]}/body", None, None)
    ),
    ("POST", "/api/events/{event_id}/replay"): Route(
        lambda w, i: (f"/api/events/{w.events[i]}/replay", None, {})
    ),
    ("GET", "/api/deliveries"): Route(
        lambda w, i: ("/api/deliveries", {"subscription_id": w.subs[i]}, None), in_path=False
    ),
    ("GET", "/api/deliveries/{delivery_id}"): Route(
        lambda w, i: (f"/api/deliveries/{w.deliveries[i]}", None, None)
    ),
    ("POST", "/api/deliveries/{delivery_id}/retry"): Route(
        lambda w, i: (f"/api/deliveries/{w.deliveries[i]}/retry", None, None)
    ),
    ("GET", "/api/dead-letters"): Route(
        lambda w, i: ("/api/dead-letters", {"subscription_id": w.subs[i]}, None), in_path=False
    ),
    ("POST", "/api/dead-letters/replay"): Route(
        lambda w, i: ("/api/dead-letters/replay", None, {"subscription_id": w.subs[i]}),
        in_path=False,
    ),
    ("DELETE", "/api/dead-letters"): Route(
        lambda w, i: ("/api/dead-letters", {"subscription_id": w.subs[i]}, None), in_path=False
    ),
    ("GET", "/api/subscriptions"): Route(
        lambda w, i: ("/api/subscriptions", None, None), in_path=False, outside=200
    ),
    ("POST", "/api/subscriptions"): Route(
        lambda w, i: (
            "/api/subscriptions",
            None,
            {"url": w.receiver, "sources": ["stripe" if i else "github"]},
        ),
        in_path=False,
        outside=403,
    ),
    ("GET", "/api/subscriptions/{sub_id}"): _sub("/api/subscriptions/{}"),
    ("PATCH", "/api/subscriptions/{sub_id}"): _sub("/api/subscriptions/{}", {"description": "x"}),
    ("DELETE", "/api/subscriptions/{sub_id}"): _sub("/api/subscriptions/{}"),
    ("POST", "/api/subscriptions/{sub_id}/rotate-secret"): _sub(
        "/api/subscriptions/{}/rotate-secret"
    ),
    ("POST", "/api/subscriptions/{sub_id}/pause"): _sub("/api/subscriptions/{}/pause"),
    ("POST", "/api/subscriptions/{sub_id}/resume"): _sub("/api/subscriptions/{}/resume"),
    ("POST", "/api/subscriptions/{sub_id}/test"): _sub("/api/subscriptions/{}/test"),
    ("POST", "/api/subscriptions/{sub_id}/preview"): _sub(
        "/api/subscriptions/{}/preview", {"body": {"ok": True}}
    ),
    ("POST", "/api/preview"): Route(
        lambda w, i: ("/api/preview", None, {"event_id": w.events[i]}), in_path=False
    ),
    ("GET", "/api/sources"): Route(
        lambda w, i: ("/api/sources", None, None), in_path=False, outside=200
    ),
    ("GET", "/api/sources/{name}"): Route(
        lambda w, i: (f"/api/sources/{'stripe' if i else 'github'}", None, None)
    ),
    ("PUT", "/api/sources/{name}"): Route(
        lambda w, i: (f"/api/sources/{'stripe' if i else 'github'}", None, {}),
        in_path=False,
        outside=403,
    ),
    ("DELETE", "/api/sources/{name}"): Route(
        lambda w, i: (f"/api/sources/{'stripe' if i else 'github'}", None, None)
    ),
    ("POST", "/api/tokens"): Route(
        lambda w, i: (
            "/api/tokens",
            None,
            {"name": "new", "role": "viewer", "sources": ["stripe" if i else "github"]},
        ),
        in_path=False,
        outside=403,
    ),
    ("GET", "/api/whoami"): Route(
        lambda w, i: ("/api/whoami", None, None), in_path=False, outside=200
    ),
    ("GET", "/api/tokens"): Route(
        lambda w, i: ("/api/tokens", None, None), in_path=False, outside=200
    ),
    ("POST", "/api/listeners"): Route(
        lambda w, i: (
            "/api/listeners",
            None,
            {"source": "stripe" if i else "github", "forward_url": "http://localhost:3000/"},
        ),
        in_path=False,
        outside=403,
    ),
    ("GET", "/api/listeners/{sub_id}/stream"): Route(
        lambda w, i: (f"/api/listeners/{w.listeners[i]}/stream", None, None), endless=True
    ),
    ("POST", "/api/listeners/{sub_id}/deliveries/{delivery_id}/attempt"): Route(
        lambda w, i: (
            f"/api/listeners/{w.listeners[i]}/deliveries/{w.deliveries[i]}/attempt",
            None,
            {"status_code": 200},
        ),
        allowed=409,
    ),
    ("DELETE", "/api/listeners/{sub_id}"): Route(
        lambda w, i: (f"/api/listeners/{w.listeners[i]}", None, None)
    ),
    ("GET", "/api/tail"): Route(
        lambda w, i: ("/api/tail", {"source": "stripe" if i else "github"}, None),
        in_path=False,
        outside=200,
        endless=True,
    ),
    ("GET", "/api/tokens/{token_id}"): Route(
        lambda w, i: (f"/api/tokens/{w.tokens[i]}", None, None)
    ),
    ("DELETE", "/api/tokens/{token_id}"): Route(
        lambda w, i: (f"/api/tokens/{w.tokens[i]}", None, None)
    ),
}

# Routes open to anyone, as before tokens existed: ingest (each source verifies its
# senders), probes, metrics and the API's own documents.
OPEN = {
    ("POST", "/ingest/{source}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}

SCHEMA = create_app(Settings(admin_token="x")).openapi()


def _operations() -> dict[tuple[str, str], str | None]:
    return {
        (method.upper(), path): op.get(REQUIRED_ROLE)
        for path, ops in SCHEMA["paths"].items()
        for method, op in ops.items()
    }


def test_every_route_declares_a_role() -> None:
    operations = _operations()
    undeclared = [k for k, role in operations.items() if role is None and k not in OPEN]
    assert undeclared == [], "routes without x-required-role (relay.api.auth.needs)"
    admin_routes = {k for k, role in operations.items() if role is not None}
    assert admin_routes == set(ROUTES), "a route the matrix cannot call, or one gone"
    for key in admin_routes:
        op = SCHEMA["paths"][key[1]][key[0].lower()]
        assert f"Requires the **{op[REQUIRED_ROLE]}** role." in op["description"], key


PRINCIPALS = [
    (role, scoped) for scoped in (True, False) for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
]
Case = tuple[Role, bool, bool]  # caller's role, scoped to stripe, object in stripe
CASES: list[Case] = [
    (role, scoped, inside) for role, scoped in PRINCIPALS for inside in (True, False)
]
ADMIN_ROUTES = sorted((key, Role(needed)) for key, needed in _operations().items() if needed)


async def _token(api: httpx.AsyncClient, role: Role, sources: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"{role.value}-{sources}", "role": role.value}
    if sources is not None:
        body["sources"] = sources
    r = await api.post("/api/tokens", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def _world(api: httpx.AsyncClient, receiver: str) -> World:
    events, deliveries, subs = {}, {}, {}
    for inside, source in ((True, "stripe"), (False, "github")):
        await create_source(api, source)
        r = await api.post(
            "/api/subscriptions", json={"url": receiver, "sources": [source]}, headers=AUTH
        )
        assert r.status_code == 201, r.text
        subs[inside] = r.json()["id"]
        events[inside] = await ingest(api, source=source)
        r = await api.get(f"/api/events/{events[inside]}", headers=AUTH)
        [delivery] = r.json()["deliveries"]
        deliveries[inside] = delivery["id"]
    listeners = {}
    for inside, source in ((True, "stripe"), (False, "github")):
        r = await api.post(
            "/api/listeners",
            json={"source": source, "forward_url": "http://localhost:3000/"},
            headers=AUTH,
        )
        assert r.status_code == 201, r.text
        listeners[inside] = r.json()["id"]
    targets = {
        inside: (await _token(api, Role.VIEWER, [source]))["id"]
        for inside, source in ((True, "stripe"), (False, "github"))
    }
    callers = {
        f"{role.value}{'/stripe' if scoped else ''}": (
            await _token(api, role, ["stripe"] if scoped else None)
        )["token"]
        for role, scoped in PRINCIPALS
    }
    return World(receiver, events, deliveries, subs, targets, listeners, callers)


def _expected(route: Route, needed: Role, role: Role, scoped: bool, inside: bool) -> int | str:
    outside = scoped and not inside
    if outside and route.in_path:
        return 404
    if not role.includes(needed):
        return 403
    if outside:
        return route.outside
    return route.allowed or "2xx"


async def _check(
    api: httpx.AsyncClient, world: World, key: tuple[str, str], needed: Role, case: Case
) -> tuple[httpx.Response, list[str]]:
    """One case: the answer, and what is wrong with it (nothing when it is right)."""
    method = key[0]
    route = ROUTES[key]
    role, scoped, inside = case
    caller = f"{role.value}{'/stripe' if scoped else ''}"
    path, params, body = route.call(world, inside)
    kwargs: dict[str, Any] = {
        "params": params,
        "headers": {"authorization": f"Bearer {world.callers[caller]}"},
    }
    if body is not None:
        kwargs["json"] = body
    if not route.endless:
        r = await api.request(method, path, **kwargs)
    else:
        try:
            r = await asyncio.wait_for(api.request(method, path, **kwargs), ENDLESS_S)
        except TimeoutError:
            # Refusals answer at once; a stream still open has passed the role and scope.
            r = httpx.Response(200, text="(stream open)")

    said = f"{method} {path} as {caller} {'in' if inside else 'out'}"
    wrong = []
    expected = _expected(route, needed, role, scoped, inside)
    got = r.status_code if expected != "2xx" or not r.is_success else "2xx"
    if got != expected:
        wrong.append(f"{said}: expected {expected}, got {got}: {r.text[:300]}")
    if scoped and r.is_success:  # a refusal may echo the id the caller gave, nothing more
        named = [f for f in [*world.foreign(), '"github"'] if f in r.text]
        if named:
            wrong.append(f"{said}: named {', '.join(named)}: {r.text[:300]}")
    return r, wrong


# One test per route, its twelve cases (caller x in/out of scope) against one world: a world
# per case made this file the suite's slowest by far. The cases share what they do not
# consume. A successful DELETE (a removal, purge or revocation) takes away an object later
# cases name, so the cases after one get a new world (empty Redis, a new app): every case
# meets objects that exist, and a 404 means the scope said no, not that a case deleted it.
@pytest.mark.parametrize(
    ("key", "needed"), ADMIN_ROUTES, ids=[f"{m} {p}" for (m, p), _ in ADMIN_ROUTES]
)
async def test_access(
    make_settings: Callable[..., Settings],
    redis: aioredis.Redis,
    receiver: Receiver,
    key: tuple[str, str],
    needed: Role,
) -> None:
    cases = deque(CASES)
    wrong: list[str] = []
    while cases:
        await redis.flushdb()
        async with running_app(create_app(make_settings())) as api:
            world = await _world(api, receiver.url)
            while cases:
                r, found = await _check(api, world, key, needed, cases.popleft())
                wrong += found
                if key[0] == "DELETE" and r.is_success:
                    break
    assert not wrong, f"{len(wrong)} of {len(CASES)} cases of {key[0]} {key[1]} wrong:\n" + (
        "\n".join(wrong)
    )
