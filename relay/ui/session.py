"""Dashboard sign-in: the admin token, given once, becomes a session cookie.

The cookie is random and opaque (HttpOnly, SameSite=Strict, Secure over HTTPS, expiring);
Redis keeps, under a digest of it, the session's CSRF token and a fingerprint of the admin
token it was opened with, so changing ``RELAY_ADMIN_TOKEN`` ends every session. Every
action (a POST) must carry the CSRF token, in a form field or the ``x-csrf-token`` header.
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

from relay.api.deps import ServicesDep
from relay.api.problems import Problem
from relay.api.services import Services

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


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def _fingerprint(token: str) -> str:
    # Not the token: a Redis dump must not hand out the admin token.
    return hmac.new(token.encode(), b"relay-ui-session", hashlib.sha256).hexdigest()


def _admin_token(services: Services) -> str:
    token = services.settings.admin_token
    if token is None:
        raise Problem(503, "the dashboard is disabled: RELAY_ADMIN_TOKEN is not set")
    return token.get_secret_value()


async def sign_in(services: Services, given: str, request: Request, response: Response) -> bool:
    """Open a session if ``given`` is the admin token; sets the cookie on ``response``."""
    token = _admin_token(services)
    if not hmac.compare_digest(given.encode(), token.encode()):
        return False
    cookie = secrets.token_urlsafe(32)
    ttl_s = services.settings.ui_session_ttl_s
    value = orjson.dumps({"csrf": secrets.token_urlsafe(32), "admin": _fingerprint(token)})
    await services.store.sessions.create(_digest(cookie), value, ttl_s * 1000)
    response.set_cookie(
        COOKIE, cookie, max_age=ttl_s, path=PATH, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return True


async def sign_out(services: Services, session: Session, response: Response) -> None:
    await services.store.sessions.delete(session.digest)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


async def current(request: Request, services: ServicesDep) -> Session:
    token = _admin_token(services)
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise SignInRequired
    digest = _digest(cookie)
    stored = await services.store.sessions.get(digest)
    if stored is None:
        raise SignInRequired
    data = orjson.loads(stored)
    if not hmac.compare_digest(data.get("admin", ""), _fingerprint(token)):
        raise SignInRequired
    return Session(digest, data["csrf"])


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
