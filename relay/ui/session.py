"""Dashboard sign-in: a token (the admin token or an API token), given once, becomes a
session cookie, and the session sees and does what the token may.

The cookie is random and opaque (HttpOnly, SameSite=Strict, Secure over HTTPS, expiring);
Redis keeps, under a digest of it, the session's CSRF token and either a fingerprint of the
admin token it was opened with (changing ``RELAY_ADMIN_TOKEN`` ends every such session) or
the id of the API token (read again on every page: revoking the token ends the session at
once). Every action (a POST) must carry the CSRF token, in a form field or the
``x-csrf-token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

import orjson
from fastapi import Depends, Request, Response

from relay.api import scope
from relay.api.auth import client_of
from relay.api.deps import ServicesDep
from relay.api.problems import Problem
from relay.api.services import Services
from relay.domain.access import BOOTSTRAP, Access, Role
from relay.domain.clock import now_ms

COOKIE = "relay_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PATH = "/ui"


class SignInRequired(Exception):
    """No valid session: a page answers with a redirect to the sign-in form."""


@dataclass(frozen=True, slots=True)
class Session:
    digest: str
    csrf: str
    access: Access = BOOTSTRAP

    @property
    def can_operate(self) -> bool:
        return self.access.allows(Role.OPERATOR)

    @property
    def can_admin(self) -> bool:
        return self.access.allows(Role.ADMIN)


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def _fingerprint(token: str) -> str:
    # Not the token: a Redis dump must not hand out the admin token.
    return hmac.new(token.encode(), b"relay-ui-session", hashlib.sha256).hexdigest()


def _disabled() -> Problem:
    return Problem(503, "the dashboard is disabled: RELAY_ADMIN_TOKEN is not set")


async def sign_in(services: Services, given: str, request: Request, response: Response) -> bool:
    """Open a session if ``given`` is a valid token; sets the cookie on ``response``."""
    access = await services.auth.authenticate(given, client_of(request), request.url.path)
    admin = services.settings.admin_token
    if access is None and admin is None:
        raise _disabled()
    if access is None:
        return False
    cookie = secrets.token_urlsafe(32)
    ttl_s = services.settings.ui_session_ttl_s
    holder = (
        {"token": access.token_id}
        if access.token_id is not None
        else {"admin": _fingerprint(admin.get_secret_value() if admin else "")}
    )
    value = orjson.dumps({"csrf": secrets.token_urlsafe(32), **holder})
    await services.store.sessions.create(_digest(cookie), value, ttl_s * 1000)
    response.set_cookie(
        COOKIE, cookie, max_age=ttl_s, path=PATH, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return True


async def sign_out(services: Services, session: Session, response: Response) -> None:
    await services.store.sessions.delete(session.digest)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


async def _access(services: Services, data: dict[str, str]) -> Access | None:
    """Who the session acts as, read again now (a revoked token or a new admin token)."""
    if "token" in data:
        token = await services.store.tokens.get(data["token"])
        if token is None or token.expired(now_ms()):
            return None
        return token.access()
    admin = services.settings.admin_token
    if admin is not None and hmac.compare_digest(
        data.get("admin", ""), _fingerprint(admin.get_secret_value())
    ):
        return BOOTSTRAP
    return None


async def current(request: Request, services: ServicesDep) -> Session:
    cookie = request.cookies.get(COOKIE)
    stored = await services.store.sessions.get(_digest(cookie)) if cookie else None
    access = None if stored is None else await _access(services, orjson.loads(stored))
    if access is None and services.settings.admin_token is None:
        raise _disabled()
    if stored is None or access is None:
        raise SignInRequired
    request.state.access = access  # for the audit line of an action
    if access.scoped:  # an event, delivery or subscription in the path: 404 outside the scope
        await scope.check_path(services, access, request.method, request.path_params)
    return Session(_digest(cookie or ""), orjson.loads(stored)["csrf"], access)


SessionDep = Annotated[Session, Depends(current)]


async def form_data(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); the UI posts nothing else."""
    body = await request.body()
    if len(body) > 64 * 1024:
        raise Problem(413, "the form is too large")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "the form could not be read") from None
    return {key: values[0] for key, values in parsed.items()}


async def checked_form(request: Request, session: SessionDep) -> dict[str, str]:
    """The form of an action, after its CSRF token matched the session's."""
    form = await form_data(request)
    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD, "")
    if not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise Problem(403, "the form's CSRF token is missing or stale; reload the page")
    return form


ActionForm = Annotated[dict[str, str], Depends(checked_form)]


class _Allowed:
    """An action's role: refused (403) when the session's token does not have it, even
    though the page hides the button."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, session: SessionDep) -> None:
        if not session.access.allows(self.role):
            raise Problem(403, f"this needs the {self.role.value} role")


OperatorAction = Depends(_Allowed(Role.OPERATOR))
