"""The console for tests: ``ConsoleHarness`` (a dock store in a directory, a console over it
with an injectable clock, accounts, signed-in clients, a real server for browsers) and
``browser()`` (Playwright driving Debian's Chromium, never a downloaded browser).

    h = ConsoleHarness(tmp_path)
    pw = h.add_account("tess", "technician")
    c = h.client("tess")                       # a TestClient signed in as tess
    c.post_form("/cameras/enrol", {"device_id": "bwv-0042"})   # csrf added
    h.clock.advance(31 * 60 * 1_000_000)       # time passes (µs)

    with h.serve() as server, browser() as page:
        sign_in(page, server.url, "tess", pw)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from base.clock import VirtualClock
from console.accounts import AccountStore
from console.app import create_console_app
from console.core import Account, ConsoleConfig, open_console
from dock.instance import Dock, open_dock
from dock.server import ServerThread
from dock.tls import TlsFiles

CHROMIUM = "/usr/bin/chromium"  # Debian's package `chromium`
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT: Any = {"width": 1024, "height": 768}  # a tablet (a playwright ViewportSize)
START_US = 1_796_191_200_000_000  # 2026-12-02 06:00:00 UTC
# argon2id with small costs: the tests sign in often (production uses argon2-cffi's defaults)
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class ConsoleClient(TestClient):
    """A TestClient that knows its session's CSRF token (``post_form`` adds it)."""

    csrf: str = ""

    def post_form(self, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.post(url, data={**(data or {}), "csrf": self.csrf}, **kw)

    def refresh_csrf(self, url: str = "/") -> str:
        m = CSRF_RE.search(self.get(url).text)
        self.csrf = m.group(1) if m else ""
        return self.csrf


class ConsoleHarness:
    """A dock store in ``store_dir`` and a console over it, on a clock the test moves."""

    def __init__(
        self,
        store_dir: Path,
        *,
        clock: VirtualClock | None = None,
        config: ConsoleConfig | None = None,
        dock: Dock | None = None,
    ) -> None:
        """``dock``: an already open dock on ``store_dir`` (e.g. a DockHarness's), whose
        clock is then the console's too (``clock`` is only the harness's own)."""
        self.store_dir = Path(store_dir)
        self.clock = clock or VirtualClock(START_US)
        self.dock = dock or open_dock(self.store_dir, clock=self.clock.now_us)
        self.console = open_console(
            self.dock, self.store_dir, config or ConsoleConfig(secure_cookies=False)
        )
        self.accounts = AccountStore(self.console.db, hasher=FAST_HASHER)
        self.app = create_console_app(self.console, accounts=self.accounts)
        self.passwords: dict[str, str] = {}

    def now_us(self) -> int:
        return self.console.now_us()

    def add_account(self, name: str, *roles: str, devices: tuple[str, ...] = ()) -> str:
        """Make an account; its password (also kept in ``passwords``)."""
        password = f"{name}-correct-horse"
        self.accounts.add(name, password, roles, devices, now_us=self.now_us())
        self.passwords[name] = password
        return password

    def account(self, name: str) -> Account:
        got = self.accounts.get(name)
        assert got is not None, name
        return got

    def client(self, name: str | None = None, **kw: Any) -> ConsoleClient:
        """A TestClient (same-origin base URL), signed in as ``name`` when given."""
        kw = {"base_url": "http://console.test", "follow_redirects": False, **kw}
        c = ConsoleClient(self.app, **kw)
        if name is not None:
            sign_in_client(c, name, self.passwords[name])
        return c

    def custody(self, action: str | None = None) -> list[Any]:
        """The custody log's entries (with ``action`` only, when given)."""
        entries = self.dock.store.custody_log(0, 100_000)
        return [e for e in entries if action is None or e.action == action]

    def serve(self) -> ServerThread:
        """The console on loopback over HTTPS (a P-256 certificate: Chromium has no Ed25519
        TLS), not yet started: ``with h.serve() as server: server.url``."""
        return ServerThread(self.app, tls=test_tls_files(self.store_dir))

    def close(self) -> None:
        self.console.db.close()
        if self.dock.translog is not None:
            self.dock.translog.close()
        self.dock.store.close()


def sign_in_client(c: ConsoleClient, name: str, password: str) -> ConsoleClient:
    form = c.get("/login")
    m = CSRF_RE.search(form.text)
    assert m, "the sign-in page has no form token"
    r = c.post("/login", data={"name": name, "password": password, "csrf": m.group(1)})
    assert r.status_code == 303, f"sign-in as {name} failed: {r.status_code}"
    c.refresh_csrf()
    return c


def test_tls_files(directory: Path) -> TlsFiles:
    """The console's own certificate (ECDSA P-256, localhost and 127.0.0.1), made in
    ``directory`` as `bwv dock serve` makes it in the store."""
    from console.tls import ensure_console_tls

    return ensure_console_tls(directory)


test_tls_files.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


@contextlib.contextmanager
def browser(*, javascript: bool = True) -> Iterator[Any]:
    """A Playwright page in Debian's Chromium (1024x768, self-signed HTTPS accepted)."""
    from playwright.sync_api import sync_playwright  # the dev extra

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            ctx = b.new_context(
                viewport=VIEWPORT, ignore_https_errors=True, java_script_enabled=javascript
            )
            yield ctx.new_page()
            ctx.close()
        finally:
            b.close()


def sign_in(page: Any, base_url: str, name: str, password: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto(f"{base_url}/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
