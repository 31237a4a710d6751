"""Issue 14, the recordings, custody log, problems and retention pages over HTTP (a
TestClient signed in as each role): what each role reads, the custody log's exports, that a
restricted recording leaks nowhere (listing, search, the custody log, the problems page),
and that pages answer a bad address with a page, never a traceback. The browser journeys
are tests/test_journey_console_firewall.py and tests/test_journey_console_retention_page.py;
this module also holds their set-up (``shipped_console``)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.testing import START_US, ConsoleHarness
from crypto.manifest import manifest_fields
from dock.testing import DockHarness, OutboxDevice, segment_bytes, stored_parts
from tests.test_journey_log_dock import ship_all

DAY_US = 86_400 * 1_000_000


class Clock:
    """The dock's (and so the console's) clock, moved by the test."""

    def __init__(self, t_us: int = START_US) -> None:
        self.t_us = t_us

    def __call__(self) -> int:
        return self.t_us

    def advance(self, us: int) -> None:
        self.t_us += us


def segment_at(dev: OutboxDevice, stored: bytes, rec: str, index: int, wall_us: int) -> None:
    """``dev.add_segment``, recorded at ``wall_us`` (a minute long) by a synced clock."""
    name = f"{rec}_{index:04d}.bwvseg"
    (dev.root / "segments").mkdir(exist_ok=True)
    (dev.root / "segments" / name).write_bytes(stored)
    fields = manifest_fields(
        firmware_version="test", recording_id=rec, segment_index=index, start_us=0,
        end_us=60_000_000, wall_start_us=wall_us, wall_end_us=wall_us + 60_000_000,
        wall_quality="synced", trigger={}, file=name, agency_key_id=dev.agency_key_id,
        **stored_parts(stored), recovered=False, unsigned_tail=None,
    )  # fmt: skip
    record, _ = dev.chain.append("manifest", fields)
    dev.records.append(record)


@contextlib.contextmanager
def shipped_console(
    root: Path, recordings: dict[str, list[str]], log_config=None
) -> Iterator[tuple[ConsoleHarness, DockHarness, Clock]]:
    """A real dock that received ``recordings`` (camera -> recording ids, two segments and
    an end record each) and a console over it."""
    clock = Clock()
    h = DockHarness(root / "dock", clock=clock, log_config=log_config)
    try:
        for n, (device, recs) in enumerate(recordings.items()):
            dev = OutboxDevice(root / device, device)
            dev.creds = h.enroll(dev)
            for k, rec in enumerate(recs):
                hours_ago = 30 if n == 0 else 6 - n  # the first camera: the day before
                start = START_US - hours_ago * 3_600_000_000 + k * 1_800_000_000
                for i in range(2):
                    data = segment_bytes(3000 + i, n * 10 + i)
                    segment_at(dev, data, rec, i, start + i * 60_000_000)
                dev.end_recording(rec)
            ship_all(h, dev)
        c = ConsoleHarness(root / "dock", dock=h.dock)
        yield c, h, clock
    finally:
        h.close()


def refs(html: str) -> dict[str, str]:
    """recording id -> its page's address, from the recordings list."""
    return {
        m.group(2): m.group(1)
        for m in re.finditer(r'href="(/recordings/[0-9a-f]+)"><code>([^<]+)</code>', html)
    }


def row_of(html: str, recording_id: str) -> str:
    m = re.search(rf'<tr[^>]*data-recording="{recording_id}".*?</tr>', html, re.S)
    assert m, f"no row for {recording_id}"
    return m.group(0)


@pytest.fixture
def site(tmp_path):
    with shipped_console(tmp_path, {"cam-7": ["raid-1", "patrol-2"], "cam-8": ["walk-3"]}) as (
        c,
        h,
        clock,
    ):
        c.add_account("sam", "supervisor", devices=("cam-7",))
        c.add_account("sue", "supervisor")
        c.add_account("ivan", "investigator")
        c.add_account("ada", "auditor")
        c.add_account("tess", "technician")
        yield c


def _mark(c: ConsoleHarness, recording_id: str, reason: str = "victim present") -> str:
    sam = c.client("sam")
    ref = refs(sam.get("/recordings").text)[recording_id]
    r = sam.post_form(f"{ref}/sensitive", {"reason": reason})
    assert r.status_code == 303, r.text
    return ref


def test_the_list_shows_each_recording_with_times_camera_and_status(site):
    page = site.client("ivan").get("/recordings")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    row = row_of(page.text, "raid-1")
    assert "recorded between" in row and "cam-7" in row and "verified" in row
    assert set(refs(page.text)) == {"raid-1", "patrol-2", "walk-3"}


def test_search_by_camera_status_and_date(site):
    ivan = site.client("ivan")
    assert set(refs(ivan.get("/recordings?camera=cam-8").text)) == {"walk-3"}
    assert set(refs(ivan.get("/recordings?status=gap").text)) == set()
    day = "2026-12-02"  # cam-8 recorded that day; cam-7 the day before
    assert set(refs(ivan.get(f"/recordings?from={day}&to={day}").text)) == {"walk-3"}
    assert set(refs(ivan.get("/recordings?to=2026-12-01").text)) == {"raid-1", "patrol-2"}
    assert refs(ivan.get("/recordings?from=2030-01-01").text) == {}
    assert set(refs(ivan.get("/recordings?q=PATROL").text)) == {"patrol-2"}
    bad = ivan.get("/recordings?from=yesterday")
    assert bad.status_code == 200 and "A date is YYYY-MM-DD" in bad.text


def test_a_technician_may_not_open_the_recordings(site):
    r = site.client("tess").get("/recordings")
    assert r.status_code == 403
    assert site.custody("access_refused")[-1].actor == "account:tess"


def test_a_restricted_recording_leaks_nowhere(site):
    ref = _mark(site, "raid-1")
    ivan = site.client("ivan")
    listing = ivan.get("/recordings").text
    row = row_of(listing, "raid-1")
    assert "restricted" in row and "recorded between" in row
    assert "cam-7" not in row and "verified" not in row
    assert "raid-1" not in refs(ivan.get("/recordings?camera=cam-7").text)
    assert "raid-1" not in refs(ivan.get("/recordings?status=verified").text)
    assert "raid-1" not in refs(ivan.get("/recordings?q=cam-7").text)
    assert "raid-1" in refs(ivan.get("/recordings?q=raid").text)  # by its id: it may
    page = ivan.get(ref)
    assert page.status_code == 403
    assert "restricted" in page.text and "cam-7" not in page.text
    assert "Download the exhibit" not in page.text
    refused = site.custody("access_refused")[-1]
    assert (refused.actor, refused.detail["recording_id"]) == ("account:ivan", "raid-1")
    # the problems page names it by id only, whatever is wrong with it
    assert "cam-7" not in re.sub(r"patrol-2[^<]*", "", ivan.get("/problems").text)


def test_an_export_without_a_grant_is_refused_and_logged(site):
    ref = _mark(site, "raid-1")
    ivan = site.client("ivan")
    r = ivan.post_form(f"{ref}/export")
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert not site.custody("exported")
    last = site.custody("access_refused")[-1]
    assert last.actor == "account:ivan" and last.detail["attempt"] == "export"


def test_with_a_grant_the_investigator_sees_and_exports(site):
    ref = _mark(site, "raid-1")
    sam = site.client("sam")
    r = sam.post_form(f"{ref}/grant", {"grantee": "ivan", "reason": "case 42 interview"})
    assert r.status_code == 303
    page = sam.get(r.headers["location"]).text
    assert "Access granted." in page and "ivan: case 42 interview" in page
    assert "Ask to lift the mark" in page and "Download the exhibit" not in page
    ivan = site.client("ivan")
    page = ivan.get(ref)
    assert page.status_code == 200 and "cam-7" in page.text
    got = ivan.post_form(f"{ref}/export")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/zip"
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.content[:2] == b"PK"
    assert site.custody("exported")[-1].actor == "account:ivan"


def test_the_custody_log_page_and_its_exports(site):
    _mark(site, "raid-1")
    site.client("ivan").get(refs(site.client("ivan").get("/recordings").text)["raid-1"])
    ada = site.client("ada")
    page = ada.get("/custody")
    assert page.status_code == 200
    refused = [
        m.group(0)
        for m in re.finditer(r'<tr[^>]*data-action="access_refused".*?</tr>', page.text, re.S)
    ]
    assert any("account:ivan" in r and "raid-1" in r for r in refused)
    assert "victim present" not in page.text  # the mark's reason: redacted for the auditor
    got = ada.get("/custody.csv?recording=raid-1")
    assert got.headers["content-disposition"] == 'attachment; filename="custody-raid-1.csv"'
    table = list(csv.DictReader(io.StringIO(got.text)))
    assert {r["recording_id"] for r in table} == {"raid-1"}
    assert all(r["redacted"] == "yes" for r in table)
    assert "cam-7" not in got.text and "victim present" not in got.text
    doc = json.loads(ada.get("/custody.json").text)
    assert doc["custody_log"]["exported_by"] == "account:ada"
    assert doc["custody_log"]["redacted"] >= 1
    exports = site.custody("custody_exported")
    assert [e.detail["format"] for e in exports] == ["csv", "json"]
    # by camera: a restricted recording's entries never answer it
    by_cam = ada.get("/custody?camera=cam-7").text
    assert "raid-1" not in by_cam and "patrol-2" in by_cam


def test_the_custody_log_is_for_supervisors_and_auditors(site):
    assert site.client("ivan").get("/custody").status_code == 403
    assert site.client("tess").get("/custody.csv").status_code == 403
    assert site.client("sue").get("/custody").status_code == 200


def test_the_custody_log_pages(site):
    store = site.dock.store
    for i in range(120):
        store.log("technician", "note", site.now_us(), detail={"n": i})
    ada = site.client("ada")
    last = ada.get("/custody").text
    assert "Page 3 of 3" in last or "Page 4 of 4" in last
    first = ada.get("/custody?page=1").text
    assert ">1</td>" in first and "n=119" not in first
    assert ada.get("/custody?page=x").status_code == 200


def test_lifting_a_mark_needs_two_supervisors(site):
    ref = _mark(site, "raid-1")
    sam = site.client("sam")
    asked = sam.post_form(f"{ref}/lift/request", {"reason": "no victim after all"})
    assert asked.status_code == 303
    again = sam.post_form(f"{ref}/lift/approve")
    assert again.status_code == 403
    assert site.client("ivan").get(ref).status_code == 403  # still restricted
    sue = site.client("sue")
    assert sue.post_form(f"{ref}/lift/approve").status_code == 403  # sue may not see it yet
    grant = {"grantee": "sue", "reason": "second supervisor for the lift"}
    assert sam.post_form(f"{ref}/grant", grant).status_code == 303
    assert sue.post_form(f"{ref}/lift/approve").status_code == 303
    assert site.client("ivan").get(ref).status_code == 200
    assert [e.actor for e in site.custody("sensitive_lifted")] == ["account:sue"]


def test_a_form_without_its_token_is_refused(site):
    ref = _mark(site, "raid-1")
    sam = site.client("sam")
    r = sam.post(f"{ref}/hold", data={"reason": "case 42"})
    assert r.status_code == 403
    assert not site.custody("legal_hold_set")


def test_an_unknown_recording_is_a_page_not_a_traceback(site):
    r = site.client("ivan").get("/recordings/0000000000000000")
    assert r.status_code == 404 and "No such recording" in r.text
    assert "Traceback" not in r.text


def test_the_problems_page_reads_for_every_role(site):
    for name in ("sam", "ivan", "ada", "tess"):
        page = site.client(name).get("/problems")
        assert page.status_code == 200
        assert "What was checked" in page.text


def test_the_retention_page_runs_the_job_and_shows_what_it_did(site):
    sam = site.client("sam")
    links = refs(sam.get("/recordings").text)
    r = sam.post_form(f"{links['raid-1']}/categories", {"category": ["non-evidential"]})
    assert r.status_code == 303
    r = sam.post_form(f"{links['patrol-2']}/categories", {"category": ["non-evidential"]})
    assert sam.post_form(f"{links['patrol-2']}/hold", {"reason": "complaint 17"}).status_code == 303
    page = sam.get("/retention").text
    assert "deleted 31 days after the recording" in page and "No recording is due" in page
    site.dock.clock.advance(32 * DAY_US)
    sam = site.client("sam")  # a new day, a new session
    page = sam.get("/retention").text
    assert "raid-1" in row_of(page, "raid-1") and "kept: legal hold" in row_of(page, "patrol-2")
    ran = sam.post_form("/retention/run")
    assert ran.status_code == 303 and ran.headers["location"].startswith("/retention?job=")
    page = sam.get(ran.headers["location"]).text
    assert "1 recording deleted, 1 kept by a legal hold" in page
    assert [e.actor for e in site.custody("retention_deleted")] == ["account:sam"] * 3
    listing = site.client("ivan").get("/recordings?status=deleted").text
    assert set(refs(listing)) == {"raid-1"}


def test_only_a_supervisor_runs_retention(site):
    ada = site.client("ada")
    assert ada.get("/retention").status_code == 200
    assert "Run the retention job now" not in ada.get("/retention").text
    assert ada.post_form("/retention/run").status_code == 403
    assert site.client("ivan").get("/retention").status_code == 403


def test_a_retention_jobs_error_about_a_restricted_recording_names_its_id_only(site):
    from console.catalog import Catalog
    from console.routes_retention import _error

    _mark(site, "raid-1")
    catalog = Catalog(site.console)
    line = "cam-7/raid-1: disk full"
    assert _error(catalog, site.account("ada"), line) == "recording raid-1: failed (restricted)"
    assert _error(catalog, site.account("sam"), line) == line  # sam marked it: granted


def test_run_now_while_a_job_runs_says_so(site):
    from console.retention import SCHEMA

    site.console.db.ensure(SCHEMA)
    with site.console.db.tx() as c:
        c.execute("INSERT INTO retention_jobs(started_at_us, by) VALUES(?,?)",
                  (site.now_us(), "console"))  # fmt: skip
    sam = site.client("sam")
    ran = sam.post_form("/retention/run")
    assert ran.headers["location"] == "/retention?busy=1"
    page = sam.get(ran.headers["location"]).text
    assert "Another retention job is running" in page and "unfinished" in page
