"""Issue 14, the problems page's data (console/problems.py): everything at the dock that needs
a person, each with what, where and since when: footage missing from a camera's chain (a
gap), a recording withheld from the witnessed log (the store checked with the witness keys
the dock is configured with), uploads that failed verification, a camera that recorded and
has not docked for hours, and a disk running out of space."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from nacl.signing import SigningKey

from console import problems
from console.core import AUDITOR, Account, ConsoleConfig, open_console
from console.testing import ConsoleHarness
from dock.checkpoints import (
    LogConfig,
    WitnessConfig,
    latest_checkpoint,
    log_dir,
    save_log_config,
)
from dock.testing import DockHarness, OutboxDevice, segment_bytes
from tests.test_journey_log_dock import ship_all
from tlog.cosignature import CosignatureSigner
from tlog.note import add_signatures, split_note

WITNESS = CosignatureSigner("watchdog.example", SigningKey(hashlib.sha256(b"wd").digest()))
AUDIT = Account("audrey", frozenset({AUDITOR}))
HOUR_US = 3600 * 1_000_000
DOCS = Path(__file__).resolve().parent.parent / "docs"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def dock(tmp_path):
    clock = Clock()
    h = DockHarness(tmp_path / "dock", clock=clock)
    h.clock_ = clock
    yield h
    h.close()


def _console(h: DockHarness, **cfg):
    return open_console(h.dock, h.store_dir, ConsoleConfig(secure_cookies=False, **cfg))


def _shipped(h: DockHarness, root: Path, name: str, recordings=("recA",), drop=()):
    """A camera that recorded ``recordings`` (two segments each) and shipped them, minus
    the chain records at the sequence numbers ``drop`` (lost on the camera)."""
    dev = OutboxDevice(root / name, name)
    dev.creds = h.enroll(dev)
    for rec in recordings:
        for i in range(2):
            dev.add_segment(segment_bytes(2000 + i, i), recording_id=rec)
        dev.end_recording(rec)
    for seq in drop:
        for p in (dev.root / "chain").iterdir():
            if p.name.startswith(f"{seq:012d}."):
                p.unlink()
    ship_all(h, dev)
    return dev


def test_a_quiet_dock_has_no_problem_and_says_what_it_checked(dock, tmp_path):
    _shipped(dock, tmp_path, "cam-1")
    rep = problems.collect(_console(dock), AUDIT)
    assert rep.problems == []
    assert any("gaps" in c and "none" in c for c in rep.checks)
    assert any("no witness configured" in c for c in rep.checks)


def test_footage_missing_from_a_cameras_chain_is_a_gap_with_its_place(dock, tmp_path):
    dev = _shipped(dock, tmp_path, "cam-2", recordings=("recA", "recB"), drop=(1,))
    rep = problems.collect(_console(dock), AUDIT)
    gaps = [p for p in rep.problems if p.kind == problems.GAP]
    assert gaps, rep
    chain = [p for p in gaps if p.recording_id is None]
    assert chain and "chain record 1 not at the dock" in chain[0].what
    assert chain[0].where == "/recordings?camera=cam-2"
    assert chain[0].since_us == dock.clock_.now  # when the dock logged the gap
    rec = [p for p in gaps if p.recording_id == "recA"]
    assert rec and rec[0].where.startswith("/recordings/") and "cam-2" not in rec[0].where
    assert rec[0].since_us == dock.clock_.now  # when the dock logged the gap in it
    assert dev.device_id == "cam-2"


def _witnessed(h: DockHarness, tmp: Path) -> None:
    """The dock is configured with a witness, which cosigned its latest checkpoint."""
    cp = latest_checkpoint(h.store_dir)
    assert cp is not None
    text, _ = split_note(cp.note)
    note = add_signatures(cp.note, [WITNESS.cosign(text, 1_800_000_000)])
    (log_dir(h.store_dir) / "checkpoint").write_bytes(note)
    save_log_config(h.store_dir, LogConfig((WitnessConfig("http://127.0.0.1:9", WITNESS.vkey),)))


def test_a_recording_withheld_from_the_witnessed_log_is_a_problem(tmp_path):
    from tests.test_journey_verifylog_store import _delete_recording

    h = DockHarness(tmp_path / "dock")
    try:
        _shipped(h, tmp_path, "cam-3", recordings=("recA", "recB"))
        _witnessed(h, tmp_path)
        console = _console(h)
        ok = problems.collect(console, AUDIT)
        assert not [p for p in ok.problems if p.kind == "withheld"], ok.problems
        assert any("every leaf the witness saw" in c for c in ok.checks)
    finally:
        h.close()
    _delete_recording(tmp_path / "dock", "recB", rewrite_log=False)
    h = DockHarness(tmp_path / "dock")
    try:
        rep = problems.collect(_console(h), AUDIT)
    finally:
        h.close()
    withheld = [p for p in rep.problems if p.kind == "withheld"]
    assert withheld, rep
    assert any("NOT VERIFIED" in c for c in rep.checks)


def test_an_upload_that_failed_verification_stays_a_problem_until_received(dock, tmp_path):
    _shipped(dock, tmp_path, "cam-4")
    store = dock.dock.store
    why = {"reasons": ["chunk 2: signature does not verify"]}
    store.log("device:cam-4", "rejected", dock.clock_.now, device_id="cam-4", segment_id="seg-x",
              detail=why)  # fmt: skip
    console = _console(dock)
    got = [p for p in problems.collect(console, AUDIT).problems if p.kind == problems.REJECTED]
    assert len(got) == 1
    assert "1 upload failed verification" in got[0].what
    assert "chunk 2: signature does not verify" in got[0].what
    assert got[0].since_us == dock.clock_.now
    store.log("device:cam-4", "received", dock.clock_.now, device_id="cam-4",
              segment_id="seg-x", detail={})  # fmt: skip
    assert not [p for p in problems.collect(console, AUDIT).problems if p.kind == "rejected"]


def test_a_camera_with_footage_queued_that_has_not_docked_for_hours(dock, tmp_path):
    _shipped(dock, tmp_path, "cam-5")
    reports = {
        "cam-5": {
            "queued_segments": 3,
            "queued_bytes": 4_500_000,
            "oldest_queued_wall_us": dock.clock_.now - HOUR_US,
            "received_at_us": dock.clock_.now,
        }
    }
    dock.dock.store.device_report = reports.get  # the camera's last report (helper E's store)
    console = _console(dock, not_docked_hours=24)
    dock.clock_.now += 23 * HOUR_US
    assert not [p for p in problems.collect(console, AUDIT).problems if p.kind == "not_docked"]
    dock.clock_.now += 2 * HOUR_US
    got = [p for p in problems.collect(console, AUDIT).problems if p.kind == "not_docked"]
    assert len(got) == 1
    assert "cam-5: 3 segments (4.5 MB) recorded and not at the dock" in got[0].what
    assert "25 h ago" in got[0].what
    assert got[0].since_us == reports["cam-5"]["oldest_queued_wall_us"]
    reports["cam-5"] = dict(reports["cam-5"], queued_segments=0, received_at_us=dock.clock_.now)
    assert not [p for p in problems.collect(console, AUDIT).problems if p.kind == "not_docked"]
    # it reported 2 queued, then shipped them in the same round, and went out on patrol
    reports["cam-5"] = dict(reports["cam-5"], queued_segments=2, received_at_us=dock.clock_.now)
    dock.clock_.now += 1
    for seg in ("s1", "s2"):
        dock.dock.store.log("device:cam-5", "received", dock.clock_.now, device_id="cam-5",
                            segment_id=seg, detail={})  # fmt: skip
    dock.clock_.now += 30 * HOUR_US
    assert not [p for p in problems.collect(console, AUDIT).problems if p.kind == "not_docked"]


def test_a_disk_running_out_of_space_is_a_problem(dock, monkeypatch):
    real = os.statvfs

    def nearly_full(path):
        st = real(path)
        return SimpleNamespace(
            f_blocks=1000, f_frsize=1_000_000, f_bavail=50, f_bfree=50, f_bsize=st.f_bsize
        )

    console = _console(dock, disk_warn_fraction=0.10)
    monkeypatch.setattr(problems.os, "statvfs", nearly_full)
    got = [p for p in problems.collect(console, AUDIT).problems if p.kind == problems.DISK]
    assert len(got) == 1
    assert got[0].what.startswith("50.0 MB free of 1.0 GB (5.0 %)")
    console = _console(dock, disk_warn_fraction=0.04)
    assert not [p for p in problems.collect(console, AUDIT).problems if p.kind == "disk"]


def test_one_check_failing_does_not_hide_the_others(dock, monkeypatch):
    def broken(_console, _entries=None):
        raise RuntimeError("index unreadable")

    monkeypatch.setattr(problems, "gaps", broken)
    monkeypatch.setattr(problems.os, "statvfs", lambda p: SimpleNamespace(
        f_blocks=10, f_frsize=1, f_bavail=0))  # fmt: skip
    rep = problems.collect(_console(dock), AUDIT)
    assert any("could not check (index unreadable)" in c for c in rep.checks)
    assert [p.kind for p in rep.problems] == ["disk"]


def test_the_problems_page_in_a_browser(tmp_path, monkeypatch):
    """What a supervisor and an investigator read on the problems page (Chromium, JavaScript
    off): each problem with where and since when; a problem about a recording the
    investigator may not see names its id only. Screenshot: docs/console-problems.png."""
    from console.catalog import Catalog
    from console.testing import CHROMIUM, browser, sign_in
    from tests.test_journey_console_pages import DAY_US, shipped_console

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    cameras = {"cam-7": ["raid-0600", "patrol-0900"], "cam-8": ["walk-1100"]}
    with shipped_console(tmp_path, cameras) as (c, h, clock):
        sam = c.add_account("sam", "supervisor")
        ivan = c.add_account("ivan", "investigator")
        _shipped(h, tmp_path, "cam-9", recordings=("door-1200", "door-1300"), drop=(1,))
        store = c.dock.store
        store.log("device:cam-8", "rejected", clock(), device_id="cam-8", segment_id="x" * 64,
                  detail={"reasons": ["chunk 3: signature does not verify"]})  # fmt: skip
        reports = {"cam-8": {"queued_segments": 4, "queued_bytes": 96_000_000,
                             "oldest_queued_wall_us": clock() - HOUR_US,
                             "received_at_us": clock()}}  # fmt: skip
        monkeypatch.setattr(store, "device_report", reports.get, raising=False)
        catalog = Catalog(c.console)
        account = c.account("sam")
        catalog.set_categories(account, "cam-7", "patrol-0900", ["non-evidential"])
        catalog.mark_sensitive(account, "cam-9", "door-1200", "witness present")
        clock.advance(32 * DAY_US)
        real = os.statvfs
        monkeypatch.setattr(problems.os, "statvfs", lambda p: SimpleNamespace(
            f_blocks=real(p).f_blocks, f_frsize=real(p).f_frsize,
            f_bavail=real(p).f_blocks // 20))  # fmt: skip
        with c.serve() as server, browser(javascript=False) as page:
            sign_in(page, server.url, "sam", sam)
            page.goto(f"{server.url}/problems")
            main = page.locator("main").inner_text()
            for kind in ("gap", "rejected", "not_docked", "retention_due", "disk"):
                assert page.locator(f"#problems-{kind}").count() == 1, (kind, main)
            assert "chain record 1 not at the dock" in main
            assert "cam-8: 4 segments (96.0 MB) recorded and not at the dock" in main
            assert "chunk 3: signature does not verify" in main
            assert "patrol-0900" in page.locator("#problems-retention_due").inner_text()
            page.screenshot(path=str(DOCS / "console-problems.png"), full_page=True)
            page.click("form.who button[type=submit]")
            sign_in(page, server.url, "ivan", ivan)
            page.goto(f"{server.url}/problems")
            restricted = page.locator("#problems-restricted").inner_text()
            assert "door-1200" in restricted and "cam-9" not in restricted
            gaps = page.locator("#problems-gap").inner_text()
            assert "door-1200" not in gaps  # its gap is said as "needs attention" only
            assert "camera cam-9: chain record 1 not at the dock" in gaps  # a camera's, not it


def test_a_problems_link_is_shown_only_to_whom_may_open_it(dock, tmp_path):
    """A rejected upload's problem links to the camera's custody entries: the auditor gets
    the link; a technician, whom that page would refuse (403), gets the problem without it."""
    _shipped(dock, tmp_path, "cam-6")
    dock.dock.store.log("device:cam-6", "rejected", dock.clock_.now, device_id="cam-6",
                        segment_id="seg-y", detail={"reasons": ["bad chunk"]})  # fmt: skip
    c = ConsoleHarness(dock.store_dir, dock=dock.dock)
    c.add_account("ada", "auditor")
    c.add_account("tess", "technician")
    for name, linked in (("ada", True), ("tess", False)):
        page = c.client(name).get("/problems").text
        assert "bad chunk" in page
        assert ('href="/custody?camera=cam-6"' in page) is linked, name
