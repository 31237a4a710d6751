"""Issue 14, people and roles: the console's named accounts, sessions and CSRF protection.

A password is kept only as an argon2id hash; five wrong tries lock an account for five
minutes; a session ends when idle or too old (the dock's injected clock, never a sleep), and
when its account is disabled or its password changed; the database keeps only the session
token's SHA-256; every form needs the session's CSRF token and a same-site origin; cookies
are HttpOnly, Secure and SameSite=Strict; a role without a permission gets a 403 page and
an ``access_refused`` custody event; no traceback ever reaches a page; a sign-in is a
``signed_in`` custody event; accounts are made with ``bwv dock account``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
from typing import Annotated

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from fastapi import APIRouter, Depends, Request

import console.render
from bwv.cli import main
from console.accounts import LOCK_S, AccountError, AccountStore
from console.auth import require
from console.core import Account, ConsoleConfig
from console.render import NavItem, render
from console.sessions import COOKIE
from console.testing import ConsoleHarness, sign_in_client

MIN_US = 60 * 1_000_000


@pytest.fixture
def h(tmp_path):
    harness = ConsoleHarness(tmp_path / "store")
    yield harness
    harness.close()


def _db_bytes(h: ConsoleHarness) -> bytes:
    """Everything the console's database holds on disk (the WAL included)."""
    base = h.console.db.path
    return b"".join(p.read_bytes() for p in base.parent.glob(base.name + "*"))


def _login(c, name: str, password: str):
    form = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    return c.post("/login", data={"name": name, "password": password, "csrf": token})


# ---------------------------------------------------------------- passwords


def test_the_password_is_kept_only_as_an_argon2id_hash(h):
    pw = h.add_account("ann", "auditor")
    assert pw.encode() not in _db_bytes(h)
    (stored,) = h.console.db.query("SELECT pw_hash FROM accounts WHERE name = 'ann'")[0]
    assert stored.startswith("$argon2id$")
    assert h.accounts.check_password("ann", pw, h.now_us()) == Account(
        "ann", frozenset({"auditor"})
    )
    assert h.accounts.check_password("ann", pw + "x", h.now_us()) is None
    assert h.accounts.check_password("nobody", pw, h.now_us()) is None


def test_names_passwords_and_roles_are_checked(h):
    with pytest.raises(AccountError, match="bad account name"):
        h.accounts.add("Ann Smith", "long enough pw", ["auditor"], now_us=0)
    with pytest.raises(AccountError, match="too short"):
        h.accounts.add("ann", "short", ["auditor"], now_us=0)
    with pytest.raises(AccountError, match="unknown role 'admin'"):
        h.accounts.add("ann", "long enough pw", ["admin"], now_us=0)
    h.add_account("ann", "auditor")
    with pytest.raises(AccountError, match="exists already"):
        h.add_account("ann", "auditor")


def test_a_weaker_hash_is_remade_at_the_next_good_sign_in(h):
    weak = AccountStore(h.console.db, PasswordHasher(time_cost=1, memory_cost=512, parallelism=1))
    weak.add("ann", "correct horse battery", ["auditor"], now_us=0)
    assert h.accounts.check_password("ann", "correct horse battery", h.now_us()) is not None
    (stored,) = h.console.db.query("SELECT pw_hash FROM accounts WHERE name = 'ann'")[0]
    assert not h.accounts.hasher.check_needs_rehash(stored)
    assert "m=512" not in stored


def test_five_wrong_passwords_lock_the_account_for_five_minutes(h):
    pw = h.add_account("ann", "auditor")
    for _ in range(5):
        assert h.accounts.check_password("ann", "wrong password!", h.now_us()) is None
    assert h.accounts.check_password("ann", pw, h.now_us()) is None  # locked: even the right one
    h.clock.advance(LOCK_S * 1_000_000 - 1)
    assert h.accounts.check_password("ann", pw, h.now_us()) is None
    h.clock.advance(1)
    assert h.accounts.check_password("ann", pw, h.now_us()) is not None


def test_a_refused_sign_in_says_nothing_of_which_names_exist_and_logs_no_password(h, caplog):
    pw = h.add_account("ann", "auditor")
    c = h.client()
    with caplog.at_level(logging.WARNING, logger="bwv.console"):
        wrong = _login(c, "ann", "not-the-password-1")
        unknown = _login(c, "nobody", "not-the-password-2")
    assert wrong.status_code == unknown.status_code == 401
    said = [re.search(r'id="login-error">([^<]*)<', r.text).group(1) for r in (wrong, unknown)]
    assert said[0] == said[1] and "Wrong account name or password" in said[0]
    assert COOKIE not in c.cookies
    log = caplog.text
    assert "'ann'" in log and "wrong password" in log and "an unknown name" in log
    assert "'nobody'" not in log  # an unknown name may be a password typed in the wrong field
    assert "not-the-password" not in log and pw not in log
    assert not h.custody("signed_in")


# ---------------------------------------------------------------- sessions


def test_a_sign_in_is_a_custody_event_and_opens_the_home_page(h):
    h.add_account("tess", "technician")
    c = h.client("tess")
    home = c.get("/")
    assert home.status_code == 200 and "Hello, tess" in home.text
    (entry,) = h.custody("signed_in")
    assert entry.actor == "account:tess"


def test_only_the_session_tokens_sha256_is_stored(h):
    h.add_account("tess", "technician")
    c = h.client("tess")
    token = c.cookies[COOKIE]
    assert len(token) >= 43  # 32 random bytes
    disk = _db_bytes(h)
    assert token.encode() not in disk
    assert hashlib.sha256(token.encode()).hexdigest().encode() in disk


def test_no_session_goes_to_the_sign_in_page_and_back(h):
    pw = h.add_account("tess", "technician")
    c = h.client()
    r = c.get("/?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/%3Fx%3D1"
    form = c.get(r.headers["location"])
    assert 'name="next" value="/?x=1"' in form.text
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    done = c.post("/login", data={"name": "tess", "password": pw, "csrf": token, "next": "/?x=1"})
    assert done.status_code == 303 and done.headers["location"] == "/?x=1"


@pytest.mark.parametrize("evil", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_after_signing_in_the_console_never_sends_you_to_another_site(h, evil):
    pw = h.add_account("tess", "technician")
    c = h.client()
    form = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    done = c.post("/login", data={"name": "tess", "password": pw, "csrf": token, "next": evil})
    assert done.status_code == 303 and done.headers["location"] == "/"


def test_an_idle_session_ends(h):
    h.add_account("tess", "technician")
    c = h.client("tess")
    h.clock.advance(29 * MIN_US)
    assert c.get("/").status_code == 200  # used: the idle time starts again
    h.clock.advance(29 * MIN_US)
    assert c.get("/").status_code == 200
    h.clock.advance(30 * MIN_US + 1)
    r = c.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_page_left_polling_for_live_updates_still_signs_out_when_idle(h):
    """console.js asks /uploads.json every second with X-Bwv-Poll: that is not use, so a
    tablet left on the uploads page does not stay signed in for ever."""
    h.add_account("tess", "technician")
    c = h.client("tess")
    for _ in range(31):
        h.clock.advance(MIN_US)
        r = c.get("/uploads.json", headers={"X-Bwv-Poll": "1"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert c.get("/").status_code == 303


def test_any_session_ends_after_twelve_hours_however_busy(h):
    h.add_account("tess", "technician")
    c = h.client("tess")
    for _ in range(12 * 4):
        h.clock.advance(15 * MIN_US)
        assert c.get("/").status_code == 200
    h.clock.advance(1)
    assert c.get("/").status_code == 303


def test_signing_out_ends_the_session_for_good(h):
    h.add_account("tess", "technician")
    c = h.client("tess")
    token = c.cookies[COOKIE]
    out = c.post_form("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    c.cookies.set(COOKIE, token)  # a copied cookie opens nothing any more
    assert c.get("/").status_code == 303


def test_expired_sessions_are_removed_at_the_next_sign_in(h):
    h.add_account("tess", "technician")
    h.client("tess")
    h.client("tess")
    h.clock.advance(31 * MIN_US)
    h.client("tess")
    assert h.app.state.sessions.count("tess") == 1


def test_a_person_changes_their_own_password_and_their_other_sessions_end(h):
    pw = h.add_account("tess", "technician")
    here, elsewhere = h.client("tess"), h.client("tess")
    page = here.get("/account")
    assert page.status_code == 200 and 'id="account-name">tess<' in page.text
    form = {"current": pw, "new": "a new long password", "again": "a new long password"}
    for bad, says in (
        ({"current": "not the password"}, "current password is not that"),
        ({"again": "something else entirely"}, "two new passwords differ"),
        ({"new": "short", "again": "short"}, "too short"),
        ({"new": pw, "again": pw}, "is the current one"),
    ):
        r = here.post_form("/account/password", {**form, **bad})
        assert r.status_code in (400, 403) and says in r.text, (bad, r.text)
    assert not h.custody("password_changed")
    r = here.post_form("/account/password", form)
    assert r.status_code == 200 and "Password changed" in r.text
    assert here.get("/").status_code == 200  # this browser goes on (a new session token)
    here.refresh_csrf()
    assert here.post_form("/logout").status_code == 303
    assert elsewhere.get("/").status_code == 303  # the others ended
    assert h.accounts.check_password("tess", "a new long password", h.now_us()) is not None
    (entry,) = h.custody("password_changed")
    assert entry.actor == "account:tess"
    assert entry.detail == {"account": "tess", "sessions_ended": 1}
    assert b"a new long password" not in _db_bytes(h)


def test_a_password_change_without_the_csrf_token_is_refused(h):
    pw = h.add_account("tess", "technician")
    c = h.client("tess")
    form = {"current": pw, "new": "a new long password", "again": "a new long password"}
    assert c.post("/account/password", data=form).status_code == 403
    assert h.accounts.check_password("tess", pw, h.now_us()) is not None


# ---------------------------------------------------------------- CSRF and cookies


def test_a_form_without_the_sessions_csrf_token_is_refused(h):
    h.add_account("tess", "technician")
    c = h.client("tess")
    for data in ({}, {"csrf": "guessed"}, {"csrf": h.client("tess").csrf}):  # another session's
        r = c.post("/logout", data=data)
        assert r.status_code == 403 and "did not come from this console" in r.text
    assert c.get("/").status_code == 200  # still signed in


def test_a_form_posted_from_another_site_is_refused(h):
    h.add_account("tess", "technician")
    c = h.client("tess")
    r = c.post_form("/logout", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "another site" in r.text
    r = c.post_form("/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    r = c.post_form("/logout", headers={"Origin": "null"})  # hidden, and nothing else says
    assert r.status_code == 403
    assert c.get("/").status_code == 200
    ok = c.post_form("/logout", headers={"Origin": "http://console.test"})
    assert ok.status_code == 303
    c = h.client("tess")
    hidden = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # the browser vouches
    assert c.post_form("/logout", headers=hidden).status_code == 303


def test_the_sign_in_form_has_its_own_csrf_token(h):
    pw = h.add_account("tess", "technician")
    c = h.client()
    r = c.post("/login", data={"name": "tess", "password": pw, "csrf": "made-up"})
    assert r.status_code == 403 and COOKIE not in c.cookies
    c.get("/login")
    r = c.post(
        "/login",
        data={"name": "tess", "password": pw, "csrf": c.cookies["bwv_login"]},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and COOKIE not in c.cookies


def test_cookies_are_httponly_secure_and_samesite_strict(tmp_path):
    h = ConsoleHarness(tmp_path / "store", config=ConsoleConfig(secure_cookies=True))
    try:
        pw = h.add_account("tess", "technician")
        c = h.client(base_url="https://console.test")
        r = _login(c, "tess", pw)
        assert r.status_code == 303
        cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith(COOKIE + "="))
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
        assert not any(f.startswith(("max-age", "expires", "domain")) for f in flags)
        assert "strict-transport-security" in r.headers
    finally:
        h.close()


def test_every_answer_has_the_security_headers_and_no_inline_script(h):
    c = h.client()
    page = c.get("/login")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text and "style=" not in page.text
    css = c.get("/static/console.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert "http" not in css.text  # every asset local


# ---------------------------------------------------------------- roles


def _page_router() -> APIRouter:
    """A page needing ``custody.view`` (supervisors and auditors), as the real pages do."""
    router = APIRouter()

    @router.get("/custody-test")
    def page(request: Request, account: Annotated[Account, Depends(require("custody.view"))]):
        return render(request, "error.html", account, title="ok", message="the custody page")

    @router.get("/boom")
    def boom(request: Request):
        raise RuntimeError("secret internals /etc/bwv path")

    return router


def test_a_role_without_the_permission_gets_403_and_the_refusal_is_in_the_custody_log(h):
    h.app.include_router(_page_router())
    h.add_account("tess", "technician")
    h.add_account("ann", "auditor")
    tess = h.client("tess")
    r = tess.get("/custody-test")
    assert r.status_code == 403 and "may not open this page" in r.text
    (refused,) = h.custody("access_refused")
    assert refused.actor == "account:tess"
    assert refused.detail == {"permission": "custody.view", "path": "/custody-test"}
    assert h.client("ann").get("/custody-test").status_code == 200
    assert len(h.custody("access_refused")) == 1


def test_the_home_page_links_only_the_pages_the_account_may_open(h, monkeypatch):
    router = APIRouter()
    for path in ("/cameras", "/custody"):
        router.add_api_route(path, lambda: "", methods=["GET"])
    h.app.include_router(router)  # (once the page modules are in, these are served anyway)
    unserved = NavItem("Nowhere", "/nowhere-page", "problems.view", "a page not written yet")
    monkeypatch.setattr(console.render, "NAV", (*console.render.NAV, unserved))
    h.add_account("tess", "technician")
    h.add_account("ann", "auditor")
    tess = h.client("tess").get("/").text
    ann = h.client("ann").get("/").text
    assert 'href="/cameras"' in tess and 'href="/custody"' not in tess
    assert 'href="/cameras"' in ann and 'href="/custody"' in ann
    assert 'href="/nowhere-page"' not in ann + tess  # not served: not linked


# ---------------------------------------------------------------- no traceback


def test_no_traceback_ever_reaches_a_page(h, caplog):
    h.app.include_router(_page_router())
    c = h.client(raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="bwv.console"):
        r = c.get("/boom")
    assert r.status_code == 500 and "Something went wrong" in r.text
    assert "Traceback" not in r.text and "secret internals" not in r.text
    assert "RuntimeError" in caplog.text  # the server's log has it
    assert "default-src 'self'" in r.headers["content-security-policy"]
    missing = c.get("/no/such/page")
    assert missing.status_code == 404 and "No such page" in missing.text
    bad = c.post("/login", data={"name": "x" * 500})
    assert bad.status_code == 400 and "Traceback" not in bad.text and "name" in bad.text
    huge = c.post("/login", content=b"name=" + b"x" * 100_000,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert huge.status_code == 413 and "Traceback" not in huge.text


# ---------------------------------------------------------------- the CLI


def _bwv(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_accounts_are_made_listed_disabled_and_repassworded_with_the_cli(h):
    store = str(h.store_dir)
    r = _bwv("dock", "account", "add", "sam", "--role", "supervisor", "--device", "bwv-0042",
             "--store", store, "--password-stdin", input="sam's long password\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    listed = json.loads(_bwv("dock", "account", "list", "--json", "--store", store).output)
    assert listed == {
        "accounts": [
            {"name": "sam", "roles": ["supervisor"], "devices": ["bwv-0042"], "disabled": False}
        ]
    }
    assert b"sam's long password" not in _db_bytes(h)
    c = h.client()
    sign_in_client(c, "sam", "sam's long password")  # the console's own hasher reads it
    assert c.get("/").status_code == 200

    r = _bwv("dock", "account", "passwd", "sam", "--store", store, "--password-stdin",
             input="a brand new password\n")  # fmt: skip
    assert r.exit_code == 0 and "1 session(s) ended" in r.output
    assert c.get("/").status_code == 303  # signed out by the change
    assert h.accounts.check_password("sam", "sam's long password", h.now_us()) is None
    sign_in_client(c, "sam", "a brand new password")

    r = _bwv("dock", "account", "disable", "sam", "--store", store)
    assert r.exit_code == 0 and "1 session(s) ended" in r.output
    assert c.get("/").status_code == 303
    assert _login(c, "sam", "a brand new password").status_code == 401
    assert "DISABLED" in _bwv("dock", "account", "list", "--store", store).output

    got = [(e.actor, e.action, e.detail) for e in h.custody() if e.action != "signed_in"]
    assert got == [
        ("technician", "account_added",
         {"account": "sam", "roles": ["supervisor"], "devices": ["bwv-0042"]}),
        ("technician", "password_changed", {"account": "sam", "sessions_ended": 1}),
        ("technician", "account_disabled", {"account": "sam", "sessions_ended": 1}),
    ]  # fmt: skip


def test_the_cli_refuses_bad_accounts_in_one_line(h):
    store = str(h.store_dir)
    h.add_account("ann", "auditor")
    cases = [
        (("add", "ann", "--role", "auditor"), "pw is long enough\n", "exists already"),
        (("add", "Ann", "--role", "auditor"), "pw is long enough\n", "bad account name"),
        (("add", "bob", "--role", "auditor"), "short\n", "too short"),
        (("add", "bob", "--role", "boss"), "pw is long enough\n", "'boss' is not one of"),
        (("disable", "nobody"), None, "no account named 'nobody'"),
        (("passwd", "nobody"), "pw is long enough\n", "no account named 'nobody'"),
    ]
    for args, stdin, says in cases:
        extra = ("--password-stdin",) if stdin and args[0] != "disable" else ()
        r = CliRunner().invoke(main, ["dock", "account", *args, "--store", store, *extra],
                               input=stdin)  # fmt: skip
        assert r.exit_code == 2, (args, r.output)
        assert says in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert [a.name for a in h.accounts.list()] == ["ann"]


def test_the_database_file_is_private(h):
    h.add_account("ann", "auditor")
    assert h.console.db.path.stat().st_mode & 0o777 == 0o600
    assert sqlite3.connect(h.console.db.path).execute("SELECT COUNT(*) FROM accounts").fetchone()
