"""Issue 8, point 22: the disk fills during an abort.

The segment open when the disk filled must be closed, and the recording's end signed with
reason ``storage_fault``; when not even that fits, the device keeps the true reason and signs
it at its next write or its next start. Never "closed by recovery after a crash" nor
"interrupted" when nothing crashed.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import crypto.evidence as evidence_mod
import crypto.manifest as manifest_mod
import crypto.recovery as recovery_mod
import crypto.trail as trail_mod
from capture.config import from_dict
from crypto.verify import verify_outbox
from simulator.device import make_device
from tests.conftest import SMALL

S = 1_000_000


class Disk:
    """The device's disk as the evidence sink sees it; ``full`` makes every write that needs
    new space fail with ENOSPC (rewriting blocks already allocated still works)."""

    def __init__(self) -> None:
        self.full = False
        self.refused = 0

    def guard(self, real):
        def write(*args, **kw):
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(*args, **kw)

        return write


@pytest.fixture
def disk(monkeypatch):
    d = Disk()
    for mod, name in (
        (evidence_mod, "append_durable"),
        (recovery_mod, "write_atomic"),
        (manifest_mod, "write_atomic"),
        (trail_mod, "append_durable"),
    ):
        monkeypatch.setattr(mod, name, d.guard(getattr(mod, name)))
    return d


def _device(state: Path, disk: Disk):
    dev = make_device(from_dict(SMALL), state)
    # free space as the recorder sees it: none while the disk is full
    dev.recorder._free_bytes = lambda: 0 if disk.full else 1 << 40
    return dev


def _fill_during_a_recording(dev, disk: Disk) -> str:
    dev.run_until(3 * S)
    dev.recorder.press(dev.now_us)
    dev.run_until(6 * S)
    rec_id = dev.recorder.current.id
    disk.full = True
    dev.run_until(8 * S)
    assert "fault" in [e.kind for e in dev.events], "the officer is told the disk is full"
    assert disk.refused >= 2, "the abort's manifest and the end record could not be written"
    return rec_id


def _chain(state: Path) -> list[dict]:
    return [
        json.loads(p.read_bytes())["record"]
        for p in sorted((state / "outbox" / "chain").glob("*.json"))
    ]


def _said(state: Path, dev) -> str:
    report = verify_outbox(
        state / "outbox", dev.keys.identity.public_key, dev.keys.agency_private()
    )
    return "\n".join(f.detail for f in report.findings), report


def test_space_comes_back_the_abort_and_its_reason_are_signed_truthfully(tmp_path, disk):
    state = tmp_path / "state"
    dev = _device(state, disk)
    rec_id = _fill_during_a_recording(dev, disk)

    disk.full = False  # space comes back: the recording resumes
    dev.run_until(12 * S)
    assert "fault_cleared" in [e.kind for e in dev.events]
    dev.recorder.finish_now(dev.now_us, "stopped")
    dev.sink.close()

    records = [r for r in _chain(state) if r["recording_id"] == rec_id]
    manifests = [r for r in records if r["type"] == "manifest"]
    ends = [(r["reason"], r["recovered"]) for r in records if r["type"] == "end"]
    assert not any(m["recovered"] for m in manifests), "no crash happened"
    assert ends == [("storage_fault", False), ("stopped", False)]
    aborted = next(i for i, r in enumerate(records) if r["type"] == "end")
    assert records[aborted - 1]["type"] == "manifest"  # the aborted segment, then its end
    said, report = _said(state, dev)
    assert "after a crash" not in said and "after a restart" not in said, said
    assert all(s.status == "authentic" for s in report.segments), said
    assert [s.segment_index for s in report.segments] == list(range(len(report.segments)))


def test_the_device_restarts_before_space_comes_back_the_reason_survives(tmp_path, disk):
    state = tmp_path / "state"
    dev = _device(state, disk)
    rec_id = _fill_during_a_recording(dev, disk)
    assert list((state / "outbox" / "segments").glob("*.partial"))
    del dev  # the battery runs out; nothing more is written

    disk.full = False
    dev = _device(state, disk)  # the next start
    records = [r for r in _chain(state) if r["recording_id"] == rec_id]
    ends = [(r["reason"], r["recovered"]) for r in records if r["type"] == "end"]
    assert ends == [("storage_fault", False)], ends
    assert not any(r["recovered"] for r in records if r["type"] == "manifest")
    said, report = _said(state, dev)
    assert [r.end_reason for r in report.recordings] == ["storage_fault"]
    assert "interrupted" not in said and "after a crash" not in said, said
    assert not list((state / "outbox" / "segments").glob("*.partial"))


def test_a_real_crash_is_still_called_one(tmp_path, disk):
    """The pending reason is for aborts only: a recording a crash left open stays
    ``interrupted``, closed by recovery."""
    state = tmp_path / "state"
    dev = _device(state, disk)
    dev.run_until(3 * S)
    dev.recorder.press(dev.now_us)
    dev.run_until(6 * S)
    rec_id = dev.recorder.current.id
    del dev  # killed mid-recording, the disk fine

    _device(state, disk)
    records = [r for r in _chain(state) if r["recording_id"] == rec_id]
    assert [(r["reason"], r["recovered"]) for r in records if r["type"] == "end"] == [
        ("interrupted", True)
    ]
    assert records[-2]["type"] == "manifest" and records[-2]["recovered"]
