"""The console's ASGI app: ``create_console_app(console)``.

Server-rendered pages (console/templates/), every asset served from console/static/, no
inline script (the Content-Security-Policy forbids it), pages readable with JavaScript off.
Each page module exposes ``router``; those of the cameras, uploads, health, recordings,
custody, problems and retention pages are included when present.

No traceback ever reaches a user: a failure answers a plain error page (the server's log
gets the details).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.accounts import AccountStore
from console.auth import Refused, SignInNeeded, login_url, session_account
from console.core import Console
from console.render import render
from console.sessions import Sessions
from dock.middleware import BodyLimit, BodyTooLarge

log = logging.getLogger("bwv.console")

STATIC_DIR = Path(__file__).parent / "static"
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"  # noqa: E501
MAX_BODY = 64 * 1024  # the console's forms are small: a bigger body is refused unread
PAGE_MODULES = (
    "console.routes_auth",  # /login, /logout, / (A)
    "console.routes_cameras",  # (C)
    "console.routes_uploads",  # (C)
    "console.routes_health",  # /healthz, /metrics (C)
    "console.routes_recordings",  # (D)
    "console.routes_custody",  # (D)
    "console.routes_problems",  # (D)
    "console.routes_retention",  # (D)
)
STATUS_TITLES = {
    400: "Not understood",
    403: "Not allowed",
    404: "No such page",
    405: "Not allowed here",
    413: "Too large",
    500: "Something went wrong",
}


def security_headers(hsts: bool) -> list[tuple[bytes, bytes]]:
    got = [
        (b"content-security-policy", CSP.encode()),
        (b"x-frame-options", b"DENY"),
        # not no-referrer: with it Chromium sends `Origin: null` on the console's own forms
        (b"referrer-policy", b"same-origin"),
        (b"x-content-type-options", b"nosniff"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if hsts:
        got.append((b"strict-transport-security", b"max-age=31536000"))
    return got


class SecurityHeaders:
    """CSP, no framing, no referrer, no sniffing (and HSTS over HTTPS) on every answer."""

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.extra = security_headers(hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.extra if k not in have]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    try:
        account = session_account(request)
    except Exception:  # the database itself may be what failed
        account = None
    title = STATUS_TITLES.get(status, "Refused")
    try:
        return render(request, "error.html", account, status, title=title, message=message)
    except Exception:
        log.exception("console: the error page failed")
        return HTMLResponse(f"<!doctype html><title>{title}</title><p>{title}.</p>", status)


def add_error_pages(app: FastAPI) -> None:
    async def sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    async def refused(request: Request, exc: Refused) -> Response:
        return error_page(request, exc.status, exc.message)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
        message = detail or {404: "There is no such page on this console."}.get(
            exc.status_code, "This request was refused."
        )
        return error_page(request, exc.status_code, message)

    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({str(e.get("loc", ["?"])[-1]) for e in exc.errors()})
        return error_page(
            request, 400, f"The form was not understood (check: {', '.join(fields)})."
        )

    async def too_large(request: Request, exc: BodyTooLarge) -> Response:
        return error_page(request, 413, f"That form was too large (at most {MAX_BODY} bytes).")

    async def crashed(request: Request, exc: Exception) -> Response:
        log.error("console: %s %s failed", request.method, request.url.path, exc_info=exc)
        page = error_page(
            request, 500, "The console could not answer this; the dock's log has the details."
        )
        # answered outside the middleware: the security headers are set here
        page.headers.update({k.decode(): v.decode() for k, v in security_headers(False)})
        return page

    app.add_exception_handler(SignInNeeded, sign_in_needed)  # type: ignore[arg-type]
    app.add_exception_handler(Refused, refused)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(BodyTooLarge, too_large)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crashed)


def include_pages(app: FastAPI) -> list[str]:
    """Include each page module's ``router`` (those not written yet are skipped)."""
    got = []
    for name in PAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise  # a page module that is there but fails to import is a bug
            continue
        app.include_router(module.router)
        got.append(name)
    return got


def create_console_app(console: Console, accounts: AccountStore | None = None) -> FastAPI:
    """The console's ASGI app over ``console`` (``accounts``: tests pass a store with a
    cheaper password hasher)."""
    app = FastAPI(
        title="bwv dock console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.console = console
    app.state.accounts = accounts or AccountStore(console.db)
    app.state.sessions = Sessions(console.db, console.config)
    app.state.pages = include_pages(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_error_pages(app)
    app.add_middleware(BodyLimit, limit_for=lambda scope: MAX_BODY)
    app.add_middleware(SecurityHeaders, hsts=console.config.secure_cookies)
    return app
