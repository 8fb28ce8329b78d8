"""Which methods a path takes, said the same way by ``OPTIONS`` and by every 405.

FastAPI registers one route per method, so Starlette's 405 names only the first route whose
path matched (``Allow: PUT`` on a path that also takes GET and DELETE), and ``OPTIONS`` on
an existing path answered 405. This ASGI middleware answers both from all the routes:
``OPTIONS`` with ``204`` and ``Allow``, an unsupported method with a 405 problem whose
``Allow`` lists every method of the path (RFC 9110, sections 9.3.7 and 15.5.6).
"""

from __future__ import annotations

import re

from starlette.routing import Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.api.problems import Problem, problem_response


class AllowedMethods:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allowed = _allowed(scope)
            if allowed:
                await _empty(204, _allow(allowed), send)
                return
            await self.app(scope, receive, send)  # no such path: the router's 404
            return
        # Routes are only looked at again for a 405: ingest's path stays as cheap as it was.
        refused = False

        async def watch(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                refused = True
            if not refused:
                await send(message)

        await self.app(scope, receive, watch)
        if refused:
            allow = _allow(_allowed(scope))
            problem = Problem(405, f"{scope['method']} is not allowed here",
                              headers={"allow": allow})  # fmt: skip
            await problem_response(problem)(scope, receive, send)


def _allow(methods: set[str]) -> str:
    return ", ".join(sorted(methods | {"OPTIONS"}))


_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def _allowed(scope: Scope) -> set[str]:
    """Every method the app documents at this path, plus its undocumented routes
    (``/docs``); empty when nothing has the path."""
    app = scope["app"]
    table: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(
        app.state, "allowed_methods", None
    )
    if table is None:
        # Built from the OpenAPI document (included routers are internal to FastAPI), so
        # Allow and the document cannot disagree.
        table = [
            (compile_path(path)[0], frozenset(m.upper() for m in ops if m in _METHODS))
            for path, ops in app.openapi()["paths"].items()
        ]
        table += [
            (route.path_regex, frozenset(route.methods))
            for route in app.router.routes
            if isinstance(route, Route) and route.methods
        ]
        app.state.allowed_methods = table
    path = scope["path"]
    return {m for regex, methods in table if regex.match(path) for m in methods}


async def _empty(status: int, allow: str, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"allow", allow.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
