"""Issue 14, the console under a security review: as an attacker (a page without its
permission check, a form from another site, an open redirect, a fixed session, markup in a
reason) and as a privacy auditor (a sensitive recording's camera or state reaching an account
without a grant by any side road: the custody log's redaction, the uploads page, the problems
page's counts and order, the retention page's order; secrets in the server's log; the
database's and the key's file modes). Each test names the point it covers."""

from __future__ import annotations

import json
import logging
import re
import stat

import pytest
from fastapi.routing import APIRoute

from console.problems import RESTRICTED, Problem, _guarded
from console.testing import CSRF_RE, ConsoleHarness
from tests.test_journey_console_pages import DAY_US, _mark, refs, row_of, shipped_console

PUBLIC = {("/login", "GET"), ("/login", "POST"), ("/healthz", "GET"), ("/metrics", "GET")}
OTHER_SITE = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}


@pytest.fixture
def site(tmp_path):
    """cam-7 (raid-1, patrol-2) and cam-8 (walk-3); sam supervises cam-7, sue every camera,
    ivan investigates, ada audits, tess is a technician."""
    with shipped_console(tmp_path, {"cam-7": ["raid-1", "patrol-2"], "cam-8": ["walk-3"]}) as (
        c, _h, _clock,
    ):  # fmt: skip
        c.add_account("sam", "supervisor", devices=("cam-7",))
        c.add_account("sue", "supervisor")
        c.add_account("ivan", "investigator")
        c.add_account("ada", "auditor")
        c.add_account("tess", "technician")
        yield c


def _dependency_names(dependant) -> set[str]:
    out = set()
    for d in dependant.dependencies:
        out.add(getattr(d.call, "__name__", ""))
        out |= _dependency_names(d)
    return out


def _api_routes(routes) -> list[APIRoute]:
    """The app's routes, those of included routers too (FastAPI keeps them apart)."""
    out = []
    for r in routes:
        if isinstance(r, APIRoute):
            out.append(r)
        elif hasattr(r, "original_router"):  # an included router: no prefix, no dependencies
            assert not r.original_router.prefix and not r.original_router.dependencies
            out += _api_routes(r.original_router.routes)
    return out


def _routes(app) -> list[tuple[str, str, set[str]]]:
    return [
        (r.path, m, _dependency_names(r.dependant))
        for r in _api_routes(app.routes)
        for m in sorted(r.methods)
    ]


def _concrete(path: str, ref: str) -> str:
    return re.sub(r"\{[^}]+\}", ref, path)


# --------------------------------------------------------------------------- routes


def test_every_route_is_public_by_design_or_needs_a_session_and_a_permission(site):
    """Every route of the app: public by design, or signed in (and, for a page about the
    dock's data, a permission); every POST but the sign-in checks the session's form token."""
    routes = _routes(site.app)
    assert len(routes) > 15
    mounts = [r.path for r in site.app.routes if hasattr(r, "path") and hasattr(r, "app")]
    assert mounts == ["/static"]  # no docs, no openapi.json
    own_account_pages = {("/", "GET"), ("/account", "GET"), ("/account/password", "POST"),
                         ("/logout", "POST")}  # fmt: skip
    for path, method, deps in routes:
        if (path, method) in PUBLIC:
            assert not any(n.startswith("require_") for n in deps), path
            continue
        assert "current_account" in deps, f"{method} {path} opens without a session"
        if (path, method) not in own_account_pages:
            assert any(n.startswith("require_") for n in deps), f"{method} {path}: no permission"
        if method == "POST":
            assert "check_csrf" in deps, f"POST {path} does not check its form token"
    # and in practice: signed out, each one sends to the sign-in page, none answers data
    anon = site.client()
    for path, method, _ in routes:
        if (path, method) in PUBLIC:
            continue
        r = anon.request(method, _concrete(path, "0123456789abcdef"))
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path


def test_a_technician_reaches_no_recording_route(site):
    """Each recordings, custody and retention route refuses an account without the
    permission, and the refusal is in the custody log."""
    ref = refs(site.client("sam").get("/recordings").text)["raid-1"].rsplit("/", 1)[1]
    tess = site.client("tess")
    for path, method, deps in _routes(site.app):
        if not any(
            n in deps
            for n in (
                "require_recordings_view",
                "require_custody_view",
                "require_retention_view",
                "require_retention_run",
            )
        ):
            continue  # fmt: skip
        before = len(site.custody("access_refused"))
        url = _concrete(path, ref)
        r = tess.get(url) if method == "GET" else tess.post_form(url, {"reason": "x"})
        assert r.status_code == 403, f"{method} {path}"
        assert "raid-1" not in r.text and "cam-7" not in r.text
        assert len(site.custody("access_refused")) == before + 1, path


def test_every_post_refuses_a_form_from_another_site(site):
    """A POST with the right form token but from another site (Origin, Sec-Fetch-Site) is
    refused, and changes nothing."""
    ref = refs(site.client("sam").get("/recordings").text)["raid-1"].rsplit("/", 1)[1]
    sam = site.client("sam")
    size = len(site.custody())
    for path, method, _ in _routes(site.app):
        if method != "POST" or path == "/login":
            continue
        r = sam.post(_concrete(path, ref), data={"csrf": sam.csrf, "reason": "x"},
                     headers=OTHER_SITE)  # fmt: skip
        assert r.status_code == 403, path
        r = sam.post(_concrete(path, ref), data={"reason": "x"})
        assert r.status_code == 403, path
    assert not {e.action for e in site.custody()[size:]} - {"access_refused"}
    assert sam.get("/recordings").status_code == 200  # still signed in


# --------------------------------------------------------------------------- sign-in


def test_the_sign_in_never_sends_to_another_site(site):
    c = site.client()
    for bad in ("https://evil.example/", "//evil.example", "/\\evil.example", "\\\\evil",
                "/\t/evil.example", "javascript:alert(1)", "http:evil.example"):  # fmt: skip
        form = c.get("/login", params={"next": bad}).text
        csrf = CSRF_RE.search(form).group(1)
        r = c.post("/login", data={"name": "ada", "password": site.passwords["ada"],
                                   "csrf": csrf, "next": bad})  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/", bad
        again = c.get("/login", params={"next": bad})  # signed in: straight there
        assert again.headers["location"] == "/", bad
        c.cookies.clear()


def test_a_sign_in_makes_a_new_session_and_the_old_one_ends(site):
    """Session fixation: a session token planted before the sign-in is not the one after."""
    c = site.client("ada")
    old = c.cookies["bwv_session"]
    form = c.get("/login?next=/").headers  # signed in: a redirect
    assert form.get("location") == "/"
    c.cookies.clear()
    c.cookies.set("bwv_session", old)  # the attacker's planted (and live) token
    page = c.get("/login", params={"next": "/x"})
    assert page.status_code == 303  # it is a live session: the form is skipped...
    fresh = site.client()
    fresh.cookies.set("bwv_session", "planted-by-an-attacker")
    csrf = CSRF_RE.search(fresh.get("/login").text).group(1)
    r = fresh.post("/login", data={"name": "ada", "password": site.passwords["ada"],
                                   "csrf": csrf})  # fmt: skip
    assert r.status_code == 303
    new = r.cookies.get("bwv_session")
    assert new and new not in (old, "planted-by-an-attacker")
    # signing in again from a browser with a live session ends that session
    c.cookies.set("bwv_login", csrf)
    r = c.post("/login", data={"name": "ada", "password": site.passwords["ada"], "csrf": csrf})
    assert r.status_code == 303 and r.cookies.get("bwv_session") not in (None, old)
    stale = site.client()
    stale.cookies.set("bwv_session", old)
    assert stale.get("/custody").status_code == 303


def test_no_password_token_or_session_in_the_log_or_the_custody_log(site, caplog):
    """Someone types their password into the name field, then signs in, changes their
    password and enrols a camera: neither the server's log nor the custody log keeps a
    password, the session's token, its form token or the enrolment token."""
    c = site.client()
    caplog.set_level(logging.DEBUG)
    secret = "tess-correct-horse"
    for name, password in ((secret, secret), ("tess", "wrong-password-1"), ("tess", secret)):
        csrf = CSRF_RE.search(c.get("/login").text).group(1)
        c.post("/login", data={"name": name, "password": password, "csrf": csrf})
    c.refresh_csrf()
    new_pw = "a-brand-new-password-9"
    r = c.post_form("/account/password", {"current": secret, "new": new_pw, "again": new_pw})
    assert r.status_code == 200 and "Password changed" in r.text
    c.refresh_csrf("/cameras")
    page = c.post_form("/cameras/enrol", {"device_id": "cam-9"}).text
    token = re.search(r"bwv-enroll-[A-Za-z0-9_-]+", page).group(0)
    secrets_ = [secret, "wrong-password-1", new_pw, token, c.cookies["bwv_session"], c.csrf]
    text = caplog.text
    assert "sign-in refused" in text
    custody = json.dumps([[e.actor, e.detail] for e in site.custody()])
    assert "token_issued" in json.dumps([e.action for e in site.custody()])
    for s in secrets_:
        assert s not in text, s
        assert s not in custody, s
    hashes = site.console.db.query("SELECT pw_hash FROM accounts WHERE name = 'tess'")
    assert new_pw not in hashes[0][0] and hashes[0][0].startswith("$argon2id$")


def test_locking_an_account_out_is_seen_in_the_custody_log(site):
    """Five wrong passwords lock an account for five minutes; anyone can do that to any
    name, so each lock is a custody event (account, from where) an auditor sees."""
    c = site.client()
    for _ in range(5):
        csrf = CSRF_RE.search(c.get("/login").text).group(1)
        r = c.post("/login", data={"name": "sam", "password": "not-sams-password", "csrf": csrf})
        assert r.status_code == 401
    locked = site.custody("account_locked")
    assert [e.detail["account"] for e in locked] == ["sam"]
    assert locked[0].detail["remote"] and locked[0].detail["locked_for_s"] == 300
    assert "not-sams-password" not in json.dumps(locked[0].detail)
    page = site.client("ada").get("/custody").text
    assert "account_locked" in page
    # an unknown name locks nothing and writes nothing
    for _ in range(6):
        csrf = CSRF_RE.search(c.get("/login").text).group(1)
        c.post("/login", data={"name": "nobody", "password": "whatever-123", "csrf": csrf})
    assert len(site.custody("account_locked")) == 1


# --------------------------------------------------------------------------- markup


def test_markup_in_a_reason_renders_inert(site):
    attack = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    ref = _mark(site, "raid-1", attack)
    sam = site.client("sam")
    assert sam.post_form(f"{ref}/hold", {"reason": attack}).status_code == 303
    assert sam.post_form(f"{ref}/grant", {"grantee": "ivan", "reason": attack}).status_code == 303
    tess = site.client("tess")
    r = tess.post_form("/cameras/revoke", {"device_id": "cam-8", "reason": attack})
    assert r.status_code == 303
    pages = [sam.get(ref).text, sam.get("/retention").text, site.client("ada").get("/custody").text,
             tess.get("/cameras").text]  # fmt: skip
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;" in pages[3]
    bad = tess.post_form("/cameras/enrol", {"device_id": "<script>alert(1)</script>"})
    assert bad.status_code == 400 and "<script>alert" not in bad.text
    nf = site.client("ada").get("/no/<script>alert(1)</script>")
    assert "<script>alert" not in nf.text


# --------------------------------------------------------------------------- the firewall


def test_the_custody_log_is_no_oracle_for_a_restricted_recordings_camera(site):
    """An auditor without a grant probes the custody log with the recording and a guessed
    camera; the probes are custody entries too. Were only the entries naming its true camera
    redacted, their own probes would tell which guess was right."""
    _mark(site, "raid-1")
    ada = site.client("ada")
    for guess in ("cam-7", "cam-8"):
        assert ada.get(f"/custody?recording=raid-1&camera={guess}").status_code == 200
        assert ada.get(f"/custody.csv?recording=raid-1&camera={guess}").status_code == 200
    doc = json.loads(ada.get("/custody.json?recording=raid-1").text)
    about = [e for e in doc["entries"] if e["recording_id"] == "raid-1"]
    assert len(about) > 4
    assert all(e["redacted"] and e["device_id"] is None for e in about), [
        (e["action"], e["device_id"], e["redacted"]) for e in about
    ]
    assert "cam-7" not in json.dumps(about) and "cam-8" not in json.dumps(about)


def test_the_uploads_page_does_not_tie_a_restricted_recording_to_its_camera(site):
    _mark(site, "raid-1")
    sam = site.client("sam")  # granted (he marked it): he sees it
    assert "raid-1" in json.dumps(sam.get("/uploads.json").json()["cameras"])
    for name in ("ada", "tess", "sue"):  # no grant
        c = site.client(name)
        data = c.get("/uploads.json").json()
        assert "raid-1" not in json.dumps(data), name
        assert "raid-1" not in c.get("/uploads").text, name
        assert "patrol-2" in data["html"]  # the others still are


def _due_and_restricted(site) -> None:
    """raid-1 (cam-7) and walk-3 (cam-8) non-evidential and due; raid-1 sensitive."""
    sam, sue = site.client("sam"), site.client("sue")
    links = refs(sam.get("/recordings").text)
    for rec, who in (("raid-1", sam), ("walk-3", sue)):
        assert who.post_form(f"{links[rec]}/categories",
                             {"category": ["non-evidential"]}).status_code == 303  # fmt: skip
        assert who.post_form(f"{links[rec]}/hold", {"reason": "case 9"}).status_code == 303
    _mark(site, "raid-1")


def test_the_problems_page_says_nothing_of_what_is_wrong_with_a_restricted_recording(site):
    sam = site.client("sam")
    links = refs(sam.get("/recordings").text)
    assert sam.post_form(f"{links['raid-1']}/categories",
                         {"category": ["non-evidential"]}).status_code == 303  # fmt: skip
    _mark(site, "raid-1")
    site.dock.clock.advance(40 * DAY_US)
    ada = site.client("ada")
    page = ada.get("/problems").text
    assert "recording raid-1 needs attention" in page
    checks = re.search(r'id="checks".*?</ul>', page, re.S).group(0)
    assert "retention due: none" in checks, checks  # its one problem is not counted there
    assert "cam-7" not in page and "non-evidential" not in page
    sam_page = site.client("sam").get("/problems").text  # granted: he reads it all
    assert "retention due: 1" in sam_page and "non-evidential" in sam_page


def test_a_finding_naming_a_restricted_recording_without_its_camera_is_guarded(site):
    _mark(site, "raid-1")
    found = [
        Problem("withheld", "device cam-7 seq 3 (recording raid-1): not held", "/custody",
                None, None, "raid-1"),
        Problem("withheld", "device cam-8 seq 4 (recording walk-3): not held", "/custody",
                None, None, "walk-3"),
        Problem("gap", "recording raid-1 (camera cam-7): a gap", "/recordings", 5, "cam-7",
                "raid-1"),
    ]  # fmt: skip
    got = _guarded(site.console, site.account("ada"), found)
    assert [p.kind for p in got] == ["withheld", RESTRICTED]  # one line for raid-1
    assert "cam-7" not in json.dumps([p.to_json() for p in got])
    assert len(_guarded(site.console, site.account("sam"), found)) == 3


def test_the_retention_pages_order_does_not_place_a_restricted_recording(site):
    """Holds were listed by camera: a restricted one's place among the others said which
    camera it came from. The restricted ones now come last, by id."""
    _due_and_restricted(site)
    site.dock.clock.advance(40 * DAY_US)
    page = site.client("ada").get("/retention").text
    holds = re.search(r'id="holds".*?</ul>', page, re.S).group(0)
    assert holds.index("walk-3") < holds.index("raid-1")  # raid-1 (cam-7) sorted first before
    due = re.search(r'id="due".*?</table>', page, re.S).group(0)
    assert due.index("walk-3") < due.index("raid-1")
    assert "cam-7" not in row_of(page, "raid-1")


# --------------------------------------------------------------------------- files


def test_the_console_database_and_key_are_for_the_dock_alone(tmp_path):
    from console.tls import ensure_console_tls

    h = ConsoleHarness(tmp_path / "store")
    try:
        h.add_account("ada", "auditor")
        h.client("ada").get("/custody")
        for f in sorted((tmp_path / "store").glob("console.sqlite3*")):
            assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f
        files = ensure_console_tls(tmp_path / "store")
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    finally:
        h.close()


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_console_key_readable_by_others_is_refused(tmp_path, mode):
    from console.tls import ConsoleTlsError, ensure_console_tls

    files = ensure_console_tls(tmp_path)
    files.key.chmod(mode)
    with pytest.raises(ConsoleTlsError, match="0600"):
        ensure_console_tls(tmp_path)


def test_a_refused_change_does_not_name_a_restricted_recordings_camera(site):
    """sam answers for cam-7 only; sue marked cam-8's walk-3 sensitive. sam's change to it
    is refused as restricted: "does not answer for camera cam-8" would say its camera."""
    sue = site.client("sue")
    ref = refs(sue.get("/recordings").text)["walk-3"]
    assert sue.post_form(f"{ref}/sensitive", {"reason": "witness"}).status_code == 303
    sam = site.client("sam")
    for path, form in (("categories", {"category": ["evidential"]}), ("sensitive", {"reason": "x"}),
                       ("grant", {"grantee": "sam", "reason": "x"}),
                       ("lift/request", {"reason": "x"}), ("hold", {"reason": "x"})):  # fmt: skip
        r = sam.post_form(f"{ref}/{path}", form)
        assert r.status_code == 403, path
        assert "cam-8" not in r.text and "restricted" in r.text, path


def test_a_flood_of_sign_ins_checks_few_passwords_at_once(tmp_path):
    """Each argon2id check takes 64 MiB: a flood of sign-ins must not run them all at once
    on the server's threads (the dock's memory); the others wait their turn."""
    import threading

    from console.accounts import MAX_CONCURRENT_CHECKS, AccountStore
    from console.db import ConsoleDB

    lock = threading.Condition()
    state = {"in": 0, "most": 0}
    go = threading.Event()

    class SlowHasher:
        def hash(self, password):
            return "h:" + password

        def check_needs_rehash(self, h):
            return False

        def verify(self, h, password):
            with lock:
                state["in"] += 1
                state["most"] = max(state["most"], state["in"])
                lock.notify_all()
            go.wait(10)
            with lock:
                state["in"] -= 1
            return h == "h:" + password

    store = AccountStore(ConsoleDB(tmp_path / "console.sqlite3"), hasher=SlowHasher())
    store.add("ann", "ann-correct-horse", ["auditor"], now_us=1)
    threads = [
        threading.Thread(target=store.sign_in, args=("ann", f"guess-{i}-xxxxx", 2))
        for i in range(6)
    ]
    for t in threads:
        t.start()
    with lock:
        assert lock.wait_for(lambda: state["in"] >= MAX_CONCURRENT_CHECKS, 10)
        more = lock.wait_for(lambda: state["in"] > MAX_CONCURRENT_CHECKS, 0.5)
    go.set()
    for t in threads:
        t.join(10)
    assert not more and state["most"] == MAX_CONCURRENT_CHECKS


def test_a_rejected_uploads_problem_links_to_its_cameras_custody_entries(site):
    """The link went to /custody?device=..., a filter the custody page does not know: the
    whole log opened, not the camera's entries."""
    site.dock.store.log("device:cam-8", "rejected", site.now_us(), device_id="cam-8",
                        segment_id="f" * 64, detail={"reasons": ["bad signature"]})  # fmt: skip
    ada = site.client("ada")
    link = re.search(r'href="(/custody\?[^"]*)"', ada.get("/problems").text).group(1)
    page = ada.get(link.replace("&amp;", "&")).text
    assert "of camera <code>cam-8</code>" in page
