"""Issue 12, point 5: an enrolled device cannot fill the dock. A manifest signed by another
key is refused when the upload is created; a device has a limit on open uploads and on the
bytes they declare; an upload abandoned for 24 h expires, its staged bytes are removed and
the custody log says so (the dock's clock is injected: the test moves it)."""

from __future__ import annotations

import pytest

from dock.client import DockRefused
from dock.protocol import segment_id_for
from dock.server import DockConfig
from dock.testing import DockHarness, OutboxDevice, declared_digest, segment_bytes
from dock.wall import WallLimits

HOUR_US = 3600 * 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now_us = 1_800_000_000_000_000

    def __call__(self) -> int:
        return self.now_us


@pytest.fixture
def clock():
    return Clock()


def make(tmp_path, clock, **limits):
    h = DockHarness(tmp_path / "dock", clock=clock, config=DockConfig(wall=WallLimits(**limits)))
    dev = OutboxDevice(tmp_path / "dev", "cam-quota")
    dev.creds = h.enroll(dev)
    return h, dev


def create(harness, device, size: int, seed: int):
    blob = segment_bytes(size, seed)
    rec = device.add_segment(blob)
    sid = segment_id_for(rec.line)
    with harness.client(device.creds) as c:
        c.sync_time()  # the dock's clock is the test's
        c.create_upload(sid, rec.line, len(blob), declared_digest(blob))
    return sid, blob


def test_a_manifest_signed_by_another_key_is_refused_at_creation(tmp_path, clock):
    h, dev = make(tmp_path, clock)
    try:
        impostor = OutboxDevice(tmp_path / "impostor", dev.device_id)  # same id, other key
        impostor.creds = dev.creds  # requests signed by the enrolled key, manifest not
        blob = segment_bytes(1000, 1)
        rec = impostor.add_segment(blob)
        with h.client(dev.creds) as c, pytest.raises(DockRefused) as e:
            c.sync_time()
            c.create_upload(segment_id_for(rec.line), rec.line, len(blob), declared_digest(blob))
        assert (e.value.status, e.value.code) == (422, "manifest_invalid")
        assert h.dock.store.open_uploads(dev.device_id) == (0, 0)
        assert not (h.store_dir / "staging" / dev.device_id).exists()
    finally:
        h.close()


def test_a_device_may_hold_only_so_many_uploads_open(tmp_path, clock):
    h, dev = make(tmp_path, clock, max_open_uploads=2)
    try:
        create(h, dev, 200, 1)
        create(h, dev, 200, 2)
        with pytest.raises(DockRefused) as e:
            create(h, dev, 200, 3)
        assert (e.value.status, e.value.code) == (429, "quota")
        assert "2 uploads open" in e.value.detail
    finally:
        h.close()


def test_a_device_may_declare_only_so_many_bytes(tmp_path, clock):
    h, dev = make(tmp_path, clock, max_declared_bytes=5000)
    try:
        create(h, dev, 3000, 1)
        with pytest.raises(DockRefused) as e:
            create(h, dev, 3000, 2)
        assert (e.value.status, e.value.code) == (429, "quota")
        create(h, dev, 2000, 3)  # what fits is taken
    finally:
        h.close()


def test_an_abandoned_upload_expires_with_its_staged_bytes_and_a_custody_event(tmp_path, clock):
    h, dev = make(tmp_path, clock)
    try:
        sid, blob = create(h, dev, 5000, 1)
        with h.client(dev.creds) as c:
            c.sync_time()
            c.append(sid, 0, blob[:2000])
        staged = h.store_dir / "staging" / dev.device_id / f"{sid}.part"
        assert staged.stat().st_size == 2000
        clock.now_us += 23 * HOUR_US  # not yet
        create(h, dev, 200, 2)
        assert staged.exists()
        clock.now_us += 2 * HOUR_US  # 25 h: abandoned
        create(h, dev, 200, 3)
        assert not staged.exists()
        assert h.dock.store.upload_state(dev.device_id, sid) is None
        expired = [e for e in h.dock.store.custody_log() if e.action == "upload_expired"]
        assert [(e.device_id, e.segment_id, e.detail["received"]) for e in expired] == [
            (dev.device_id, sid, 2000)
        ]
        assert expired[0].at_us == clock.now_us
    finally:
        h.close()
