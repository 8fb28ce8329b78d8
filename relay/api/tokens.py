"""Admin API: API tokens, each with a role and, optionally, the sources it is limited to."""

from __future__ import annotations

from typing import Self

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from relay.api.auth import AccessDep, AuditedRoute, needs
from relay.api.deps import ServicesDep
from relay.api.problems import Problem, problem_docs
from relay.api.views import Timestamp
from relay.domain.access import Role
from relay.domain.clock import now_ms
from relay.domain.tokens import Token, TokenIn, mint

router = APIRouter(
    prefix="/api",
    tags=["tokens"],
    route_class=AuditedRoute,
    responses=problem_docs(401, 403, 404, 422, 429, 503),
)


class TokenView(BaseModel):
    id: str
    name: str
    role: Role
    sources: list[str] | None = Field(description="The sources it is limited to; null: all.")
    created_at: Timestamp
    expires_at: Timestamp | None
    created_by: str | None = Field(description="The token that made it (null: the bootstrap).")
    last_used_at: Timestamp | None = Field(
        description="When it last authenticated a request (to within a minute); null: never."
    )

    @classmethod
    def of(cls, record: Token, last_used_ms: int, **extra: str) -> Self:
        return cls(
            id=record.id, name=record.name, role=record.role, sources=record.sources,
            created_at=record.created_at, expires_at=record.expires_at,
            created_by=record.created_by, last_used_at=last_used_ms or None, **extra,
        )  # fmt: skip


class TokenCreated(TokenView):
    token: str = Field(description="The secret: shown in this answer only, never again.")


class TokenList(BaseModel):
    data: list[TokenView]


class Caller(BaseModel):
    id: str | None = Field(description="The token's id; null: the bootstrap RELAY_ADMIN_TOKEN.")
    name: str
    role: Role
    sources: list[str] | None = Field(description="The sources it is limited to; null: all.")


@router.get("/whoami", **needs(Role.VIEWER))
async def whoami(access: AccessDep) -> Caller:
    """The token making this request: its role and scope (``relay apply`` plans within it)."""
    sources = None if access.sources is None else sorted(access.sources)
    return Caller(id=access.token_id, name=access.name, role=access.role, sources=sources)


@router.post("/tokens", status_code=201, **needs(Role.ADMIN))
async def create_token(spec: TokenIn, services: ServicesDep, access: AccessDep) -> TokenCreated:
    """Create a token. Its secret is in this answer and never again (only a digest is kept).
    A scoped admin can create only tokens within its own sources (403)."""
    if not access.covers(spec.role, spec.sources):
        raise Problem(403, "a token cannot create a token wider than itself (role or sources)")
    now = now_ms()
    minted = mint(spec, now, created_by=access.token_id)
    if minted.token.expired(now):
        raise Problem(422, "expires_at must lie in the future")
    await services.store.tokens.create(minted.token)
    return TokenCreated.of(minted.token, 0, token=minted.secret)


@router.get("/tokens", **needs(Role.ADMIN))
async def list_tokens(services: ServicesDep, access: AccessDep) -> TokenList:
    """Every token (a scoped admin: those within its sources), without their secrets."""
    found = await services.store.tokens.all()
    return TokenList(
        data=[TokenView.of(t, used) for t, used in found if access.covers(t.role, t.sources)]
    )


@router.get("/tokens/{token_id}", **needs(Role.ADMIN))
async def get_token(token_id: str, services: ServicesDep) -> TokenView:
    token = await services.store.tokens.get(token_id)
    if token is None:
        raise Problem(404, f"no token {token_id!r}")
    return TokenView.of(token, await services.store.tokens.last_used(token_id))


@router.delete("/tokens/{token_id}", status_code=204, **needs(Role.ADMIN))
async def revoke_token(token_id: str, services: ServicesDep) -> Response:
    """Revoke a token: it fails on the next request, in every API process."""
    if not await services.store.tokens.delete(token_id):
        raise Problem(404, f"no token {token_id!r}")
    return Response(status_code=204)
