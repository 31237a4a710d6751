"""The check before a delete without hashing the file again (dock/ship_stamp.py): the file's
stamp, taken before its first byte was read for the upload, must be the same right before the
delete, and settled (its times older than the stamp by a margin); otherwise it is hashed.

Files made by a test are seconds too young to be settled, so the tests age them: the file's
modification time is set into the past (its change time then is now) and the stamp's clock
is moved on, never the file's own times after the stamp."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dock.ship_chunks
import dock.shipper
from capture.clock import VirtualClock
from dock.client import DockClient
from dock.ship_stamp import COARSE_RACY_NS, RACY_NS, FileStamp, stamp_of, unchanged_since
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, segment_bytes

_ids = iter(range(1000))
LATER = 10 * COARSE_RACY_NS  # the stamp's clock, this far on: the file's times are settled


def _aged(path: Path) -> None:
    """Set the file's modification time an hour back (its change time becomes now)."""
    past = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(past, past))


def _later_stamp(path: Path | int) -> FileStamp:
    return stamp_of(path, now_ns=lambda: time.time_ns() + LATER)


def _file(tmp_path: Path, data: bytes = b"x" * 4096) -> Path:
    p = tmp_path / "seg.bwvseg"
    p.write_bytes(data)
    _aged(p)
    return p


def test_a_file_untouched_since_its_stamp_needs_no_hash(tmp_path):
    p = _file(tmp_path)
    assert unchanged_since(_later_stamp(p), p)


def test_a_fresh_file_is_never_taken_on_its_stamp(tmp_path):
    p = tmp_path / "seg.bwvseg"
    p.write_bytes(b"y" * 100)
    assert not stamp_of(p).settled  # written just now: a write in the same tick is unseen
    assert not unchanged_since(stamp_of(p), p)
    assert not unchanged_since(None, p)
    assert not unchanged_since(_later_stamp(p), None)


def test_coarse_times_need_the_longer_margin():
    now = 100 * 10**9
    fine = FileStamp(1, 2, 3, now - 2 * RACY_NS + 1, now - 2 * RACY_NS + 1, now)
    assert fine.settled
    coarse = FileStamp(1, 2, 3, now - 2 * 10**9, now - 2 * RACY_NS + 1, now)  # FAT-like
    assert not coarse.settled
    assert FileStamp(1, 2, 3, now - 2 * COARSE_RACY_NS, now - COARSE_RACY_NS, now).settled


EDITS = st.sampled_from(["flip", "truncate", "append", "replace", "rewrite_same", "delete"])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edit=EDITS, at=st.integers(min_value=0, max_value=4095))
def test_any_change_after_the_stamp_is_seen(tmp_path, edit, at):
    p = _file(tmp_path)
    stamp = _later_stamp(p)
    data = bytearray(p.read_bytes())
    if edit == "flip":
        with open(p, "r+b") as f:
            f.seek(at)
            f.write(bytes([data[at] ^ 1]))
    elif edit == "truncate":
        os.truncate(p, at)
    elif edit == "append":
        with open(p, "ab") as f:
            f.write(b"z")
    elif edit == "replace":  # another file, same bytes but one, renamed over it
        data[at] ^= 1
        (tmp_path / "other").write_bytes(bytes(data))
        os.replace(tmp_path / "other", p)
    elif edit == "rewrite_same":  # the same bytes written again: a write all the same
        p.write_bytes(bytes(data))
    else:
        p.unlink()
    assert not unchanged_since(stamp, p)


# --------------------------------------------------------------------------- the shipper


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"))
    yield h
    h.close()


def _device(harness, root: Path, n: int = 2) -> OutboxDevice:
    dev = OutboxDevice(root / "outbox", f"cam-stamp-{next(_ids):03d}")
    dev.creds = harness.enroll(dev)
    for i in range(n):
        dev.add_segment(segment_bytes(300_000 + i, seed=i))
    for blob in (root / "outbox" / "segments").iterdir():
        _aged(blob)
    return dev


@pytest.fixture
def settled_stamps(monkeypatch):
    """The shipper's stamps taken as if the files were long closed."""
    monkeypatch.setattr(dock.ship_chunks, "stamp_of", _later_stamp)


@pytest.fixture
def hashes(monkeypatch):
    """The files the shipper hashes again before a delete."""
    seen: list[Path | None] = []
    real = dock.shipper._digest_file

    def spy(path):
        seen.append(path)
        return real(path)

    monkeypatch.setattr(dock.shipper, "_digest_file", spy)
    return seen


def _shipper(dev, harness, client_cls=DockClient) -> Shipper:
    client = client_cls(harness.url, dev.creds, wall_clock=lambda: time.time_ns() // 1000)
    cfg = ShipperConfig(chunk_bytes=64 << 10, jitter=0.0)
    return Shipper(ChainOutbox(dev.root), client, VirtualClock(), config=cfg)


def test_a_segment_read_and_sent_whole_is_deleted_without_a_second_hash(
    harness, tmp_path, settled_stamps, hashes
):
    dev = _device(harness, tmp_path)
    sh = _shipper(dev, harness)
    assert [sh.step().action for _ in range(2)] == ["shipped", "shipped"]
    assert not list(dev.root.glob("segments/*.bwvseg"))
    assert hashes == []
    assert len(harness.dock.store.held_segments(dev.device_id)) == 2


def test_a_segment_changed_after_it_was_read_is_kept_without_the_hash(
    harness, tmp_path, settled_stamps, caplog
):
    dev = _device(harness, tmp_path, n=1)
    blob = next((dev.root / "segments").iterdir())

    class ChangesTheFile(DockClient):
        def append(self, segment_id, offset, chunk, sha256=None):
            if offset + len(chunk) == blob.stat().st_size:  # all read: change one byte
                with open(blob, "r+b") as f:
                    f.seek(100)
                    b = f.read(1)
                    f.seek(100)
                    f.write(bytes([b[0] ^ 0xFF]))
            return super().append(segment_id, offset, chunk, sha256)

    r = _shipper(dev, harness, ChangesTheFile).step()
    assert r.action == "failed" and "names other stored bytes" in r.detail
    assert blob.exists()
    assert f"{blob.name} changed on the camera since its upload" in caplog.text


def test_a_resumed_upload_is_hashed_again(harness, tmp_path, settled_stamps, hashes):
    dev = _device(harness, tmp_path, n=1)
    blob = next((dev.root / "segments").iterdir())
    sh = _shipper(dev, harness)
    seg = sh.outbox.finished()[0]
    manifest = seg.manifest_path.read_bytes()
    sid = dock.shipper.segment_id_for(manifest)
    digest, size = dock.shipper.declared(manifest, blob)
    # an earlier attempt sent the first chunk, then stopped
    sh.client.create_upload(sid, manifest, size, digest)
    sh.client.append(sid, 0, blob.read_bytes()[: 64 << 10])
    assert sh.step().action == "shipped"
    assert hashes == [blob]  # bytes it did not read this time: the whole file hashed again
    assert not blob.exists()
