"""Who is calling, what they may see and do, and the audit line of every write.

Every admin route names the role it needs with :func:`needs`::

    @router.post("/subscriptions/{sub_id}/pause", **needs(Role.OPERATOR))

which (1) authenticates the bearer token (401; 429 while the client address is guessing),
(2) answers 404, as if it did not exist, for an object named in the path that lies outside
a scoped token's sources, (3) answers 403 when the role is not enough, and (4) writes the
role into the OpenAPI document (``x-required-role``). Scope-aware routes read the caller
with :data:`AccessDep`. Writes are audited by :class:`AuditedRoute`.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import structlog
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import OutOfMemoryError

from config.settings import Settings
from relay.api import scope
from relay.api.bodies import CLIENT_SCOPE_KEY
from relay.api.problems import Problem
from relay.domain.access import BOOTSTRAP, Access, Role
from relay.domain.clock import now_ms
from relay.domain.guessing import GuessLimiter
from relay.domain.tokens import token_id_of
from relay.storage import Store

if TYPE_CHECKING:
    from relay.api.services import Services

log = structlog.get_logger("relay.auth")
audit_log = structlog.get_logger("relay.audit")

# Last-used times are written at most this often per token and process.
TOUCH_INTERVAL_MS = 60_000
REQUIRED_ROLE = "x-required-role"


class Authenticator:
    """One per process: checks presented tokens, and slows down and logs guessing."""

    def __init__(self, settings: Settings, store: Store, limiter: GuessLimiter | None = None):
        self._settings = settings
        self._store = store
        self.limiter = limiter or GuessLimiter(
            burst=settings.auth_guess_burst, per_s=settings.auth_guess_per_s
        )
        self._touched: dict[str, int] = {}

    def throttled(self, client: str) -> None:
        """429 while this address is out of guesses: its token is not even looked at."""
        wait = self.limiter.blocked(client, time.monotonic())
        if wait:
            raise Problem(
                429,
                "too many failed sign-ins from this address; try again later",
                headers={"retry-after": str(max(1, round(wait)))},
            )

    def failed(self, client: str, where: str) -> None:
        count = self.limiter.failed(client, time.monotonic())
        if count is not None:  # one line per address per interval, never what was presented
            log.warning("auth.failed", client=client, path=where, failures=count)

    async def identify(self, secret: str) -> Access | None:
        """The caller a presented secret stands for, or None for no valid token."""
        admin = self._settings.admin_token
        if admin is not None and hmac.compare_digest(
            secret.encode(), admin.get_secret_value().encode()
        ):
            return BOOTSTRAP
        token_id = token_id_of(secret)
        if token_id is None:
            return None
        token = await self._store.tokens.get(token_id)
        now = now_ms()
        if token is None or not token.matches(secret) or token.expired(now):
            return None
        if now - self._touched.get(token.id, 0) >= TOUCH_INTERVAL_MS:
            self._touched[token.id] = now
            # Best effort: a full Redis refuses this write but still serves reads, and an
            # SRE reading events through an outage must not get a 503 for it.
            with contextlib.suppress(OutOfMemoryError):
                await self._store.tokens.touch(token.id, now)
        return token.access()

    async def authenticate(self, secret: str, client: str, where: str) -> Access | None:
        self.throttled(client)
        access = await self.identify(secret) if secret else None
        if access is None:
            self.failed(client, where)
        return access


def client_of(request: Request) -> str:
    """The client as the ingest limits counted it (behind a trusted proxy, the address the
    proxy named), so guessing is throttled per real client and not per proxy."""
    counted = request.scope.get(CLIENT_SCOPE_KEY)
    if counted:
        return str(counted)
    return request.client.host if request.client else "unknown"


_bearer = HTTPBearer(auto_error=False, description="RELAY_ADMIN_TOKEN or an API token")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


class _Needs:
    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        services = _services(request)
        secret = credentials.credentials if credentials else ""
        access = await services.auth.authenticate(secret, client_of(request), request.url.path)
        if access is None and services.settings.admin_token is None:
            raise Problem(503, "the admin API is disabled: RELAY_ADMIN_TOKEN is not set")
        if access is None:
            raise Problem(
                401, "a valid bearer token is required", headers={"www-authenticate": "Bearer"}
            )
        request.state.access = access
        if access.scoped:
            await scope.check_path(services, access, request.method, request.path_params)
        if not access.allows(self.role):
            raise Problem(
                403, f"this needs the {self.role.value} role; the token is a {access.role.value}"
            )


def needs(role: Role, *then: Any) -> dict[str, Any]:
    """The route decorator's arguments that demand ``role`` (see the module's docstring),
    and run the dependencies ``then`` after it."""
    return {
        "dependencies": [Depends(_Needs(role)), *then],
        "openapi_extra": {REQUIRED_ROLE: role.value},
    }


async def current_access(request: Request) -> Access:
    access: Access = request.state.access  # set by the route's needs(); none is a bug
    return access


AccessDep = Annotated[Access, Depends(current_access)]


# --- audit ---------------------------------------------------------------------------------


def _created_id(response: Response) -> str | None:
    if response.status_code != 201 or not isinstance(response.body, bytes | memoryview):
        return None
    try:
        found = orjson.loads(bytes(response.body))
    except orjson.JSONDecodeError:
        return None
    created = found.get("id") if isinstance(found, dict) else None
    return created if isinstance(created, str) else None


_TARGET = {"token_id": "tok_id"}


def audit(request: Request, action: str, status: int, created: str | None = None) -> None:
    """One ``audit`` line per write: who, what, on which objects, and how it ended."""
    access: Access | None = getattr(request.state, "access", None)
    if access is None:
        return  # not authenticated: auth.failed tells of it (without a flood)
    # "tok_id": the log redacts any field named like a token, and a token's id is no secret.
    targets = {_TARGET.get(k, k): str(v) for k, v in request.path_params.items()}
    for name in ("subscription_id",):
        if name in request.query_params:
            targets[name] = request.query_params[name]
    if created:
        targets["created"] = created
    outcome = "succeeded" if status < 400 else "refused" if status < 500 else "failed"
    audit_log.info(
        "audit", actor_id=access.token_id, actor=access.name, role=access.role.value,
        scope=None if access.sources is None else sorted(access.sources), action=action,
        method=request.method, path=request.url.path, targets=targets, status=status,
        outcome=outcome,
    )  # fmt: skip


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def audited(action: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return await handler(request)
        try:
            response = await handler(request)
        except Problem as exc:
            audit(request, action, exc.status)
            raise
        except RequestValidationError:
            audit(request, action, 422)
            raise
        except Exception:
            audit(request, action, 500)
            raise
        audit(request, action, response.status_code, _created_id(response))
        return response

    return run


class AuditedRoute(APIRoute):
    """An admin route whose writes each log one ``audit`` line."""

    def get_route_handler(self) -> Handler:
        return audited(self.name, super().get_route_handler())  # type: ignore[return-value]
