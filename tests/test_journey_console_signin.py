"""Issue 14, in a real browser (Debian's Chromium driven by Playwright, never a downloaded
browser): a person signs in to the console over HTTPS with the form, with JavaScript on and
with it off, lands on the page they asked for, sees their account and signs out. The
session cookie the browser holds is HttpOnly, Secure and SameSite=Strict, and page scripts
cannot read it. A wrong password shows the one refusal line. Screenshots:
docs/console-signin.png and docs/console-home.png (a tablet's 1024x768)."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core import ConsoleConfig
from console.sessions import COOKIE
from console.testing import CHROMIUM, ConsoleHarness, browser, sign_in

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "console-signin.png"
HOME_SCREENSHOT = ROOT / "docs" / "console-home.png"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing")


@pytest.fixture
def h(tmp_path):
    harness = ConsoleHarness(tmp_path / "store", config=ConsoleConfig(secure_cookies=True))
    yield harness
    harness.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_person_signs_in_and_out_in_a_real_browser(h, javascript):
    pw = h.add_account("tess", "technician", "auditor")
    with h.serve() as server, browser(javascript=javascript) as page:
        page.goto(f"{server.url}/?from=bookmark")
        assert "/login" in page.url  # not signed in: the sign-in page, remembering where to
        page.fill("#name", "tess")
        page.fill("#password", "not her password")
        page.click("button[type=submit]")
        assert "Wrong account name or password" in page.inner_text("#login-error")

        page.fill("#password", pw)
        if javascript:
            page.screenshot(path=str(SCREENSHOT))
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert page.url == f"{server.url}/?from=bookmark"
        assert "Hello, tess" in page.inner_text("main")
        assert "auditor, technician" in page.inner_text("header")
        if javascript:
            page.screenshot(path=str(HOME_SCREENSHOT))

        (cookie,) = [c for c in page.context.cookies() if c["name"] == COOKIE]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        if javascript:
            assert COOKIE not in page.evaluate("document.cookie")

        page.click("text=Sign out")
        page.wait_for_load_state()
        assert page.url.endswith("/login")
        page.goto(f"{server.url}/")
        assert "/login" in page.url
    (entry,) = h.custody("signed_in")
    assert entry.actor == "account:tess"


def test_sign_in_helper_lands_on_the_home_page(h):
    pw = h.add_account("ann", "auditor")
    with h.serve() as server, browser() as page:
        sign_in(page, server.url, "ann", pw)
        assert "Hello, ann" in page.inner_text("main")
