"""Issue 14, the technician's pages over HTTP: the cameras page (what each camera reported,
its clock, revoked ones apart), enrolling (a one-time token shown once, as text and QR code,
never cached, a custody event naming the account) and revoking from the page, each refusal
said in one line on the page; the uploads page with stalled and failing cameras first and
their reason, and its JSON for the live bars; /healthz and /metrics without signing in.
Time is the harness's clock, moved by the test."""

from __future__ import annotations

import re
import threading
from collections import namedtuple

import pytest

from console.core import ConsoleConfig
from console.serving import RetentionRunner
from console.testing import ConsoleHarness
from dock.enroll import token_hash
from dock.protocol import Code

S = 1_000_000
Usage = namedtuple("Usage", "total used free")
TOKEN_RE = re.compile(r'id="token"[^>]*>(bwv-enroll-[A-Za-z0-9_-]+)<')


@pytest.fixture
def h(tmp_path):
    harness = ConsoleHarness(
        tmp_path / "store", config=ConsoleConfig(secure_cookies=False, stalled_upload_s=60)
    )
    harness.add_account("tess", "technician")
    harness.add_account("ann", "auditor")
    harness.add_account("ivan", "investigator")
    yield harness
    harness.close()


def enrol_device(h: ConsoleHarness, device_id: str, key: bytes | None = None) -> None:
    """A camera enrolled at the dock (as its provisioning does, with a token)."""
    token = "bwv-enroll-test-" + device_id
    now = h.now_us()
    h.dock.store.add_token(token_hash(token), device_id, now, now + 3600 * S, "technician")
    h.dock.store.enroll(
        device_id, key or device_id.encode().ljust(32, b"k"), token_hash(token), now
    )


# --------------------------------------------------------------------------- cameras


def test_enrolling_shows_a_token_once_as_text_and_qr_and_logs_who(h):
    c = h.client("tess")
    page = c.post_form("/cameras/enrol", {"device_id": "bwv-0042", "ttl_s": "900"})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    token = TOKEN_RE.search(page.text).group(1)
    assert '<svg shape-rendering="crispEdges" role="img" viewBox=' in page.text  # the QR code
    assert "until <strong>2026-12-02 06:15:00 UTC</strong>" in page.text
    entry = h.custody("token_issued")[-1]
    assert entry.actor == "account:tess" and entry.device_id == "bwv-0042"
    assert token not in str(entry.body())  # the dock keeps only its hash
    assert token_hash(token)[:16] == entry.detail["token_id"]
    # the token is the dock's own: it enrols that camera, once
    h.dock.store.enroll("bwv-0042", b"k" * 32, token_hash(token), h.now_us())
    assert h.dock.store.get_device("bwv-0042") is not None
    listing = c.get("/cameras").text
    assert 'data-device="bwv-0042"' in listing and token not in listing


@pytest.mark.parametrize(
    ("device_id", "ttl", "said"),
    [
        ("../etc", "3600", "Give the camera&#39;s device id"),
        ("", "3600", "Give the camera&#39;s device id"),
        ("bwv-0001", "3600", "bwv-0001 is enrolled already"),
        ("bwv-0002", "3600", "bwv-0002 is revoked: enrol the camera under a new device id"),
        ("bwv-0003", "0", "Choose how long the token stays valid"),
    ],
)
def test_an_enrolment_the_dock_would_refuse_is_said_on_the_page(h, device_id, ttl, said):
    enrol_device(h, "bwv-0001")
    enrol_device(h, "bwv-0002")
    h.dock.store.revoke("bwv-0002", "lost", "technician", h.now_us())
    before = len(h.custody("token_issued"))
    page = h.client("tess").post_form("/cameras/enrol", {"device_id": device_id, "ttl_s": ttl})
    assert page.status_code == 400
    assert said in page.text and 'id="error"' in page.text
    assert len(h.custody("token_issued")) == before  # no token made


def test_no_token_without_the_form_token_or_the_permission(h):
    tess = h.client("tess")
    forged = tess.post("/cameras/enrol", data={"device_id": "bwv-0042", "csrf": "nope"})
    assert forged.status_code == 403
    ann = h.client("ann")  # an auditor reads the cameras page, changes nothing
    page = ann.get("/cameras")
    assert page.status_code == 200 and 'action="/cameras/enrol"' not in page.text
    refused = ann.post_form("/cameras/enrol", {"device_id": "bwv-0042"})
    assert refused.status_code == 403
    assert h.custody("access_refused")[-1].detail["permission"] == "cameras.change"
    assert h.client("ivan").get("/cameras").status_code == 403  # no cameras.view
    assert h.custody("token_issued") == []


def test_revoking_from_the_page_names_the_account_and_moves_the_camera_apart(h):
    enrol_device(h, "bwv-0007")
    c = h.client("tess")
    page = c.get("/cameras").text
    assert 'name="device_id"' in page and '<option value="bwv-0007">' in page
    r = c.post_form("/cameras/revoke", {"device_id": "bwv-0007", "reason": "  reported\nlost "})
    assert r.status_code == 303 and r.headers["location"] == "/cameras?done=revoked"
    entry = h.custody("revoked")[-1]
    assert entry.actor == "account:tess" and entry.detail == {"reason": "reported lost"}
    listing = c.get("/cameras?done=revoked").text
    revoked = listing.split('id="revoked"')[1]
    assert 'data-device="bwv-0007"' in revoked and "reported lost" in revoked
    assert "the dock refuses it from now on" in listing
    assert h.dock.store.get_device("bwv-0007").revoked
    again = c.post_form("/cameras/revoke", {"device_id": "bwv-0007", "reason": "twice"})
    assert again.status_code == 303 and len(h.custody("revoked")) == 1  # revoked once


def test_a_revocation_without_reason_or_of_an_unknown_camera_is_refused(h):
    enrol_device(h, "bwv-0008")
    c = h.client("tess")
    assert (
        c.post_form("/cameras/revoke", {"device_id": "bwv-0008", "reason": " "}).status_code == 400
    )
    unknown = c.post_form("/cameras/revoke", {"device_id": "bwv-9999", "reason": "lost"})
    assert unknown.status_code == 404 and "No camera" in unknown.text
    assert not h.dock.store.get_device("bwv-0008").revoked and h.custody("revoked") == []


def test_the_cameras_page_shows_what_each_camera_reported_and_its_clock(h):
    enrol_device(h, "bwv-0010")
    enrol_device(h, "bwv-0011")
    store = h.dock.store
    store.record_report(
        "bwv-0010",
        {
            "firmware_version": "1.4.2",
            "battery_percent": 64,
            "storage_free_bytes": 12_000_000_000,
            "storage_total_bytes": 32_000_000_000,
            "queued_segments": 2,
            "queued_bytes": 150_000_000,
        },
        h.now_us(),
    )
    store.record_time_sync("bwv-0010", 250_000, h.now_us())  # the camera is 250 ms behind
    h.clock.advance(180 * S)
    page = h.client("ann").get("/cameras").text
    row = page.split('data-device="bwv-0010"')[1].split("</tr>")[0]
    for shown in ("1.4.2", "64 %", "12.0 GB free of 32.0 GB", "2 segments (150.0 MB)",
                  "250 ms behind the dock", "synced 3 min ago"):  # fmt: skip
        assert shown in row, shown
    other = page.split('data-device="bwv-0011"')[1].split("</tr>")[0]
    assert "never synced" in other and other.count("not reported") == 3


# --------------------------------------------------------------------------- uploads


def test_stalled_and_failing_cameras_come_first_with_their_reason(h):
    for d in ("bwv-0020", "bwv-0021", "bwv-0022"):
        enrol_device(h, d)
    act = h.dock.activity
    t0 = h.now_us()
    act.started("bwv-0020", "a" * 64, 0, 1_000_000, t0)  # moving
    act.started("bwv-0021", "b" * 64, 0, 2_000_000, t0)  # will stall
    act.chunk("bwv-0021", "b" * 64, 500_000, 2_000_000, t0 + 1 * S)
    act.refused("bwv-0022", "c" * 64, 422, Code.VERIFICATION, "segment failed verification", t0)
    h.clock.advance(90 * S)
    act.chunk("bwv-0020", "a" * 64, 400_000, 1_000_000, h.now_us() - 2 * S)
    act.chunk("bwv-0020", "a" * 64, 600_000, 1_000_000, h.now_us())

    page = h.client("tess").get("/uploads").text
    order = re.findall(r'<section class="camera (\w+)" data-device="([\w-]+)"', page)
    assert order == [("failing", "bwv-0022"), ("stalled", "bwv-0021"), ("uploading", "bwv-0020")]
    failing = page.split('data-device="bwv-0022"')[1].split("</section>")[0]
    assert "Failing:" in failing and "segment failed verification" in failing
    stalled = page.split('data-device="bwv-0021"')[1].split("</section>")[0]
    assert "Stalled:" in stalled and "no bytes for 89 s" in stalled
    moving = page.split('data-device="bwv-0020"')[1].split("</section>")[0]
    assert '<progress max="1000000" value="600000"' in moving
    assert "600.0 kB of 1.0 MB (60 %)" in moving and "/s" in moving
    assert "reload the page" in page and 'src="/static/console.js"' in page

    data = h.client("ann").get("/uploads.json").json()
    assert [(c["state"], c["device_id"]) for c in data["cameras"]] == [(s, d) for s, d in order]
    assert data["cameras"][2]["uploading"][0]["fraction"] == 0.6
    assert 'value="600000"' in data["html"] and data["as_of_us"] == h.now_us()


def test_the_uploads_pages_need_a_signed_in_account_that_may_see_them(h):
    anonymous = h.client()
    assert anonymous.get("/uploads.json").status_code == 303
    assert anonymous.get("/uploads").headers["location"].startswith("/login")
    assert h.client("ivan").get("/uploads.json").status_code == 403


# --------------------------------------------------------------------------- health


def test_healthz_and_metrics_answer_a_monitor_without_an_account(h):
    c = h.client()
    ok = c.get("/healthz")
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert ok.headers["cache-control"] == "no-store"
    h.app.state.disk_usage = lambda _p: Usage(100, 100, 0)
    full = c.get("/healthz")
    assert full.status_code == 503 and "full" in full.json()["problems"][0]
    metrics = c.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "bwv_dock_disk_free_bytes 0.0" in metrics.text
    assert "bwv_dock_uploads_completed_total" in metrics.text


# --------------------------------------------------------------------------- retention job


def test_the_retention_job_runs_at_start_then_every_interval_and_survives_a_failure(h):
    calls: list[object] = []
    third = threading.Event()

    def job(console):
        calls.append(console)
        if len(calls) == 2:
            raise RuntimeError("disk unplugged")
        if len(calls) == 3:
            third.set()

    runner = RetentionRunner(h.console, job, interval_s=0.001).start()
    try:
        assert third.wait(30), "the job did not run again after a failure"
    finally:
        runner.stop()
    assert calls[0] is h.console and runner.failures == 1
    assert runner.runs >= 3
