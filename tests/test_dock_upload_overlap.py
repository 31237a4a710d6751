"""A chunk of many MiB is written into the staged file a MiB at a time while the next MiB
arrives (dock/routes/uploads.py): a body that fails (its digest, or a cut connection) after
some of its batches were written counts for nothing, the file is cut back to the offset,
and the upload goes on from there to a receipt for the exact bytes."""

from __future__ import annotations

import hashlib

import pytest

from capture.clock import VirtualClock
from dock.client import DockClient, DockRefused, DockUnavailable
from dock.protocol import Code, segment_id_for
from dock.ship_chunks import declared
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.testing import DockHarness, Fault, FaultProxy, OutboxDevice, segment_bytes

SIZE = 3_500_000  # four batches of a MiB
_ids = iter(range(1000))


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"))
    yield h
    h.close()


def _wall() -> int:
    import time

    return time.time_ns() // 1000


def _upload(harness, tmp_path):
    dev = OutboxDevice(tmp_path / "outbox", f"cam-overlap-{next(_ids):03d}")
    creds = harness.enroll(dev)
    rec = dev.add_segment(segment_bytes(SIZE, seed=7))
    blob = tmp_path / "outbox" / "segments" / rec.record["file"]
    manifest = rec.line
    sid = segment_id_for(manifest)
    digest, size = declared(manifest, blob)
    return dev, creds, blob, manifest, sid, digest, size


def _staged_size(harness, device_id: str, sid: str) -> int:
    return harness.dock.store._staged(device_id, sid).stat().st_size


def _ships_whole(harness, dev, creds, blob) -> None:
    client = DockClient(harness.url, creds, wall_clock=_wall)
    sh = Shipper(ChainOutbox(dev.root), client, VirtualClock(), config=ShipperConfig(jitter=0))
    r = sh.step()
    client.close()
    assert r.action == "shipped", r
    assert not blob.exists()
    [held] = harness.dock.store.held_segments(dev.device_id)
    assert held.stored_size == SIZE


def test_a_long_chunk_that_fails_its_digest_at_the_end_counts_nothing(harness, tmp_path):
    dev, creds, blob, manifest, sid, digest, size = _upload(harness, tmp_path)
    data = blob.read_bytes()
    with DockClient(harness.url, creds, wall_clock=_wall) as client:
        client.create_upload(sid, manifest, size, digest)
        with pytest.raises(DockRefused) as exc:  # the signed digest names other bytes
            client.append(sid, 0, data[: 3 << 20], hashlib.sha256(b"other bytes").digest())
        assert exc.value.code == Code.CHECKSUM
        state = client.upload_state(sid)
    assert state is not None and state.offset == 0
    assert _staged_size(harness, dev.device_id, sid) == 0  # its written batches cut off again
    _ships_whole(harness, dev, creds, blob)


def test_a_long_chunk_cut_midway_counts_nothing(harness, tmp_path):
    dev, creds, blob, manifest, sid, digest, size = _upload(harness, tmp_path)
    data = blob.read_bytes()
    upstream = ("127.0.0.1", harness.server.port)
    with DockClient(harness.url, creds, wall_clock=_wall) as client:
        client.create_upload(sid, manifest, size, digest)
    with FaultProxy(upstream, [Fault("up", 2_600_000)]) as proxy:  # in the third MiB
        with (
            DockClient(proxy.url, creds, wall_clock=_wall, timeout=5) as client,
            pytest.raises(DockUnavailable),
        ):
            client.append(sid, 0, data[: 3 << 20])
        assert proxy.cuts == 1
    with DockClient(harness.url, creds, wall_clock=_wall) as client:
        state = client.upload_state(sid)
    assert state is not None and state.offset == 0  # none of its bytes count
    _ships_whole(harness, dev, creds, blob)  # from 0, the cut chunk's batches overwritten
