"""Issue 12, "done when": `bwv sim raid` ships over TLS end to end (the simulated camera pins
the dock's key and talks HTTPS to it); and `bwv selftest` warns about a dock key taken on first
use (`bwv provision --trust-first-dock`)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bwv.cli import main
from dock.keys import DOCK_KEY_FILE, load_or_create_signing_key
from dock.tls import TLS_CERT_FILE, certificate_key

RAID = ["--pre-record", "1", "--record", "2", "--size", "320x240", "--fps", "15"]


def test_a_raid_ships_to_its_dock_over_https_with_the_key_pinned(tmp_path):
    out = tmp_path / "raid"
    r = CliRunner().invoke(main, ["sim", "raid", "--out", str(out), *RAID])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dock"]["url"].startswith("https://")
    assert summary["receipts"] and summary["verified"]
    store = out / summary["dock"]["store"]
    dock_key = bytes(load_or_create_signing_key(store / DOCK_KEY_FILE).verify_key)
    # the dock's TLS certificate holds the very key the camera pinned and receipts are signed by
    assert certificate_key((store / TLS_CERT_FILE).read_bytes()) == dock_key
    pinned = list(out.rglob("keys/dock.pub"))
    assert pinned and bytes.fromhex(pinned[0].read_text().strip()) == dock_key


def test_selftest_warns_about_a_dock_key_taken_on_first_use(tmp_path):
    from bwv.selftest import run_selftest
    from dock.testing import DockHarness
    from tests.test_selftest import FAST, NOT_RUNNING, by_name, enrol, factory, load, make_camera

    h = DockHarness(tmp_path / "dock")
    try:
        cfg_path = make_camera(tmp_path, h.url, h.public_key)
        enrol(cfg_path, h)
        cfg = load(cfg_path)
        dock = by_name(run_selftest(cfg, factory(), options=FAST, daemon=NOT_RUNNING))["dock"]
        assert dock.status == "PASS", dock
        pin = Path(cfg.keys.dock_public_key)
        pin.with_name(pin.name + ".first-use").write_text("taken on first use\n")
        dock = by_name(run_selftest(cfg, factory(), options=FAST, daemon=NOT_RUNNING))["dock"]
    finally:
        h.close()
    assert dock.status == "WARN" and "first use" in dock.detail and "--dock-key" in dock.detail
