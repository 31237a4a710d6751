"""Who is asking, and may they: FastAPI dependencies for the console's pages.

- ``CurrentAccount``: the signed-in account (from the ``bwv_session`` cookie); without a
  live session, a 303 to ``/login?next=<this page>``.
- ``require("recordings.view")``: the account when it has that permission, else a 403 page
  and an ``access_refused`` custody event (``detail.permission``, ``detail.path``).
- ``check_csrf``: for every POST; the form's ``csrf`` field must be the session's, and an
  ``Origin`` header, when the browser sends one, must be this console's own.

Usage in a router (``Annotated``: ruff's B008 refuses ``Depends`` as a default)::

    Viewer = Annotated[Account, Depends(require("cameras.view"))]

    @router.get("/cameras")
    def cameras(request: Request, account: Viewer) -> Response: ...

    @router.post("/cameras/revoke", dependencies=[Depends(check_csrf)])
    def revoke(
        request: Request, account: Annotated[Account, Depends(require("cameras.change"))]
    ) -> Response: ...

Forms: ``<input type="hidden" name="csrf" value="{{ csrf }}">`` in every POST form (render()
passes ``csrf``); tests post with ``ConsoleClient.post_form`` (console/testing.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from console.accounts import AccountStore
from console.core import PERMISSIONS, Account, Console
from console.sessions import COOKIE, Sessions


class SignInNeeded(Exception):
    """No live session: the app answers a 303 to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class Refused(Exception):
    """Not allowed: the app answers an error page with ``status`` and ``message``."""

    def __init__(self, status: int, message: str, account: Account | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.account = account


def console_of(request: Request) -> Console:
    return request.app.state.console


POLL_HEADER = "X-Bwv-Poll"  # sent by console/static/console.js with its live updates


def accounts_of(request: Request) -> AccountStore:
    return request.app.state.accounts


def sessions_of(request: Request) -> Sessions:
    return request.app.state.sessions


def session_account(request: Request) -> Account | None:
    """The signed-in account, or None (no redirect); sets ``request.state.csrf``."""
    if hasattr(request.state, "account"):
        return request.state.account
    token = request.cookies.get(COOKIE, "")
    touch = request.headers.get(POLL_HEADER) is None  # console.js's polling is not use
    now = console_of(request).now_us()
    got = sessions_of(request).resolve(token, now, touch) if token else None
    request.state.account, request.state.csrf = got if got else (None, None)
    return request.state.account


def current_account(request: Request) -> Account:
    account = session_account(request)
    if account is None:
        path = request.url.path
        if request.url.query and request.method == "GET":
            path += "?" + request.url.query
        raise SignInNeeded(path if request.method == "GET" else "/")
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]


def require(permission: str) -> Callable[..., Account]:
    """A dependency: the account when it may ``permission``; else 403 and ``access_refused``."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")

    def dependency(request: Request, account: CurrentAccount) -> Account:
        if account.may(permission):
            return account
        console_of(request).custody(
            account,
            "access_refused",
            detail={"permission": permission, "path": request.url.path},
        )
        raise Refused(403, "Your account may not open this page.", account)

    dependency.__name__ = f"require_{permission.replace('.', '_')}"
    return dependency


def same_origin(request: Request) -> bool:
    """True unless the browser says the request comes from another site."""
    fetch_site = request.headers.get("sec-fetch-site")  # set by the browser, not by pages
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":  # a privacy setting hides it: then only Sec-Fetch-Site can tell
        return fetch_site == "same-origin"
    got = urlsplit(origin)
    host = request.headers.get("host", "")
    return got.netloc == host and got.scheme == request.url.scheme


async def check_csrf(request: Request, account: CurrentAccount) -> Account:
    """A POST's ``csrf`` field must be the session's, and it must come from this console."""
    form = await request.form()
    sent = form.get("csrf")
    want = getattr(request.state, "csrf", None)
    if not isinstance(sent, str) or not want or not secrets.compare_digest(sent, want):
        raise Refused(403, "This form has expired or did not come from this console: "
                      "reload the page and try again.", account)  # fmt: skip
    if not same_origin(request):
        raise Refused(403, "This form was sent from another site: refused.", account)
    return account


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")


def safe_next(next_path: str | None) -> str:
    """Only a path on this console (never another site) to go back to after signing in."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//"):
        return "/"
    if "\\" in next_path or any(ord(ch) < 32 for ch in next_path):
        return "/"
    return next_path
