"""Signing in and out, and the start page.

- ``GET  /login``   the sign-in form (works without JavaScript)
- ``POST /login``   name + password: a session (cookie ``bwv_session``) and a ``signed_in``
  custody event; a refusal says only "wrong name or password" (the server's log says why,
  never with the password)
- ``POST /logout``  ends the session
- ``GET  /``        the pages this account may open
- ``GET  /account``, ``POST /account/password``  one's own account; a new password (the
  current one first), a ``password_changed`` custody event; one's other sessions end

The sign-in form has its own CSRF token (a random value in a SameSite=Strict cookie and in
the form: nobody can sign a browser into their own account from another site).
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from console.accounts import LOCK_S, MAX_FAILURES, AccountError
from console.auth import (
    CurrentAccount,
    accounts_of,
    check_csrf,
    console_of,
    safe_next,
    same_origin,
    session_account,
    sessions_of,
)
from console.core import Account
from console.render import render
from console.sessions import COOKIE

log = logging.getLogger("bwv.console")
router = APIRouter()

LOGIN_COOKIE = "bwv_login"  # the sign-in form's CSRF token (before there is a session)
WRONG = (
    "Wrong account name or password. "
    f"After {MAX_FAILURES} wrong tries an account waits {LOCK_S // 60} minutes."
)


def _login_page(
    request: Request, next_path: str, *, error: str = "", name: str = "", status: int = 200
) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    page = render(
        request,
        "login.html",
        None,
        status,
        error=error,
        name=name,
        next_path=safe_next(next_path),
        login_csrf=token,
    )
    _set_cookie(request, page, LOGIN_COOKIE, token)
    return page


def _set_cookie(request: Request, response: Response, key: str, value: str) -> None:
    response.set_cookie(
        key,
        value,
        httponly=True,
        secure=console_of(request).config.secure_cookies,
        samesite="strict",
        path="/",
    )


def _remote(request: Request) -> str:
    return request.client.host if request.client else "?"


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    if session_account(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    name = name.strip().lower()
    want = request.cookies.get(LOGIN_COOKIE, "")
    if not want or not secrets.compare_digest(csrf, want) or not same_origin(request):
        log.warning("console: sign-in form refused (no or wrong form token) from %s",
                    _remote(request))  # fmt: skip
        return _login_page(request, next, name=name, status=403,
                           error="The sign-in form expired; please sign in again.")  # fmt: skip
    console = console_of(request)
    got = accounts_of(request).sign_in(name, password, console.now_us())
    if got.account is None:
        _refused_sign_in(request, name, got.reason)
        return _login_page(request, next, name=name, error=WRONG, status=401)
    old = request.cookies.get(COOKIE)
    if old:
        sessions_of(request).end(old)  # a new session for each sign-in
    session = sessions_of(request).start(got.account.name, console.now_us())
    console.custody(got.account, "signed_in", detail={"remote": _remote(request)})
    log.info("console: %s signed in from %s", got.account.name, _remote(request))
    answer = RedirectResponse(safe_next(next), status_code=303)
    _set_cookie(request, answer, COOKIE, session.token)
    answer.delete_cookie(LOGIN_COOKIE, path="/")
    return answer


def _refused_sign_in(request: Request, name: str, reason: str) -> None:
    """A refused sign-in in the server's log; an account it locks, in the custody log too
    (who tried, from where), so that someone locking accounts out is seen. The name is
    logged only when it is an account's: a password typed into the name field by mistake
    must not reach the log."""
    console = console_of(request)
    known = reason != "unknown"
    log.warning("console: sign-in refused for %s from %s: %s",
                repr(name) if known else "an unknown name", _remote(request),
                reason)  # fmt: skip
    if (
        known
        and reason.startswith("wrong")
        and (accounts_of(request).locked_until(name) > console.now_us())
    ):
        console.custody(
            None,
            "account_locked",
            detail={"account": name, "remote": _remote(request), "locked_for_s": LOCK_S},
        )


@router.post("/logout")
def logout(request: Request, account: Annotated[Account, Depends(check_csrf)]) -> Response:
    sessions_of(request).end(request.cookies.get(COOKIE, ""))
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(
        COOKIE,
        path="/",
        secure=console_of(request).config.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return answer


@router.get("/")
def home(request: Request, account: CurrentAccount) -> Response:
    return render(request, "home.html", account)


@router.get("/account")
def account_page(request: Request, account: CurrentAccount) -> Response:
    return render(request, "account.html", account, error="", notice="")


@router.post("/account/password")
def change_password(
    request: Request,
    account: Annotated[Account, Depends(check_csrf)],
    current: Annotated[str, Form(max_length=4096)] = "",
    new: Annotated[str, Form(max_length=4096)] = "",
    again: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    """A person changes their own password (the current one first: a borrowed session
    cannot); their other sessions end, this one goes on with a new token."""
    console, accounts = console_of(request), accounts_of(request)

    def refused(error: str, status: int) -> Response:
        return render(request, "account.html", account, status, error=error, notice="")

    if accounts.sign_in(account.name, current, console.now_us()).account is None:
        log.warning("console: %s: password change refused (wrong current password) from %s",
                    account.name, _remote(request))  # fmt: skip
        return refused("Your current password is not that (wrong tries count towards the "
                       "lock).", 403)  # fmt: skip
    if new != again:
        return refused("The two new passwords differ.", 400)
    if new == current:
        return refused("The new password is the current one.", 400)
    try:
        accounts.set_password(account.name, new, console.now_us())
    except AccountError as exc:
        return refused(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", 400)
    ended = sessions_of(request).end_all(account.name)
    session = sessions_of(request).start(account.name, console.now_us())
    console.custody(account, "password_changed",
                    detail={"account": account.name, "sessions_ended": ended - 1})  # fmt: skip
    request.state.csrf = session.csrf
    page = render(request, "account.html", account, error="",
                  notice="Password changed. Your other sessions have ended.")  # fmt: skip
    _set_cookie(request, page, COOKIE, session.token)
    return page
