"""Issue 8, points 10 and 11: ``bwv dock status --verify`` as an auditor reads it.

- A recording cut off by a crash (recovered at the next start) or by a full disk is
  ``ended_early`` after re-verification, as plain ``status`` says: every chunk it signed is
  there and verifies. It is not ``failed`` ("stored bytes do not match"): interrupted is not
  altered.
- Tampering found by --verify exits 1 (it exited 0); a store that cannot be read exits 2, and
  with --json says so as JSON.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import crypto.evidence as evidence_mod
from bwv.cli import main
from capture.clock import VirtualClock
from crypto import testing as ct
from dock.client import DeviceCredentials, DockClient, enroll
from dock.shipper import ChainOutbox, Shipper
from dock.testing import DockHarness

DEVICE = "cam-audit-01"
S = ct.S


def _wall() -> int:
    return time.time_ns() // 1000


def _crashed(root: Path, ident, agency) -> None:
    """A recording killed mid-segment; the next start recovers it."""
    sink = ct.make_sink(root, ident, agency)
    w = ct.Written("crashed")
    ct.write_segment(sink, w, 0, fragments=2)
    ct.write_segment(sink, w, 1, fragments=3, close=False)
    sink.trail.close()
    del sink
    sink = ct.make_sink(root, ident, agency)
    assert [p.name for p in sink.recover()] == ["crashed_0001.bwvseg"]
    sink.close()


def _disk_full(root: Path, ident, agency) -> None:
    """The disk fills mid-segment: the segment is cut to its signed chunks, the recording
    ends with storage_fault."""
    sink = ct.make_sink(root, ident, agency)
    real = evidence_mod.append_durable
    calls = {"n": 0}

    def filling(f, *data):
        calls["n"] += 1
        if calls["n"] == 4:  # header, init, fragment 0, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(f, *data)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evidence_mod, "append_durable", filling)
        with pytest.raises(OSError):
            ct.write_segment(sink, ct.Written("full"), 0, fragments=3)
        assert sink.abort_segment() is not None
    sink.end_recording("full", "storage_fault", 12 * S)
    ct.write_recording(sink, "fine", 1, 2)
    sink.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audit")
    ident, agency = ct.device_identity(DEVICE), ct.agency_key()
    _crashed(root / "dev", ident, agency)
    _disk_full(root / "dev", ident, agency)
    harness = DockHarness(root / "store")
    try:
        got = enroll(
            harness.url,
            DEVICE,
            ident,
            ident.public_key,
            harness.token(DEVICE),
            wall_clock=_wall,
            expected_dock_key=harness.public_key,
        )
        creds = DeviceCredentials(DEVICE, ident, got.dock_public_key)
        with DockClient(harness.url, creds, wall_clock=_wall) as client:
            Shipper(ChainOutbox(root / "dev" / "outbox"), client, VirtualClock()).drain()
    finally:
        harness.close()
    return root / "store"


def status(*args: str | Path):
    return CliRunner().invoke(main, ["dock", "status", *[str(a) for a in args]])


def _states(result) -> dict[str, str]:
    return {r["recording_id"]: r["state"] for r in json.loads(result.stdout)["recordings"]}


def test_interrupted_recordings_stay_ended_early_when_reverified(store):
    plain = status("--store", store, "--json")
    assert plain.exit_code == 0
    assert _states(plain) == {"crashed": "ended_early", "full": "ended_early", "fine": "verified"}
    checked = status("--store", store, "--json", "--verify")
    assert checked.exit_code == 0, checked.output
    assert _states(checked) == _states(plain)
    recs = {r["recording_id"]: r for r in json.loads(checked.stdout)["recordings"]}
    assert all(r["reverified"] for r in recs.values())
    assert "every signed byte verifies" in recs["crashed"]["detail"]
    text = status("--store", store, "--verify")
    assert text.exit_code == 0
    assert "failed" not in text.output and "do not match" not in text.output


def test_tampering_found_by_verify_exits_1(store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    blob = max((copy / "objects" / DEVICE).glob("*.blob"), key=lambda p: p.stat().st_size)
    blob.chmod(0o600)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    assert status("--store", copy).exit_code == 0  # without --verify: as checked on receipt
    r = status("--store", copy, "--verify")
    assert r.exit_code == 1, r.output
    assert "FAILED re-verification" in r.stderr
    j = status("--store", copy, "--verify", "--json")
    assert j.exit_code == 1 and "failed" in _states(j).values()


def test_a_store_that_cannot_be_read_is_exit_2_and_json(tmp_path):
    (tmp_path / "plain").mkdir()
    r = status("--store", tmp_path / "plain", "--json")
    assert r.exit_code == 2
    assert "not a dock store" in json.loads(r.stdout)["error"]
