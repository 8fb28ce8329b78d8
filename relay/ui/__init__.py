"""The web dashboard at ``/ui`` and the offline ``/docs``: server-rendered pages over the
same use cases as the API, with every asset served by the relay itself.

    from relay import ui
    ui.install(app)
"""

from __future__ import annotations

import html

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from relay.ui import pages
from relay.ui.session import SignInRequired
from relay.ui.static_dir import STATIC

# Swagger UI sets style attributes as it renders; its script stays 'self' only.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def install(app: FastAPI) -> None:
    """Mount the dashboard, its assets and ``/docs`` (create the app with ``docs_url=None``)."""

    async def sign_in_first(request: Request, _: Exception) -> RedirectResponse | HTMLResponse:
        if request.headers.get("hx-request"):
            # htmx would swap a redirect's target into the panel: send the whole page away.
            return HTMLResponse("", headers={"hx-redirect": "/ui/login"})
        return RedirectResponse("/ui/login", status_code=303)

    async def docs() -> HTMLResponse:
        page = (STATIC / "docs.html").read_text()
        return HTMLResponse(
            page.replace("{{title}}", html.escape(app.title)),
            headers={"content-security-policy": DOCS_CSP, "x-frame-options": "DENY"},
        )

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.include_router(pages.router)
    app.add_api_route("/docs", docs, include_in_schema=False)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    # Last: only what nothing above answered.
    app.add_api_route(
        "/ui/{path:path}", pages.page_not_found, methods=["GET", "HEAD"], include_in_schema=False
    )
