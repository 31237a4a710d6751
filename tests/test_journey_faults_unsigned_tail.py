"""Issue 8, point 20: the bytes a crash left unsigned are shipped, marked as unsigned.

A power cut lands after a fragment reached the disk and before the trail signed it. Recovery
sets those bytes aside (``.unsigned``) and names them in the segment's manifest. Docked, the
camera ships the segment and then those bytes, as their own kind of upload; the dock keeps
them beside the segment (never as signed evidence), logs them, and says exactly what was never
signed; on its receipt for them the camera deletes its copy. Real dock on loopback.
"""

from __future__ import annotations

import json

import pytest

from capture.clock import VirtualClock
from crypto.evidence import EvidenceSink
from crypto.seal import decrypt_segment
from crypto.testing import S, Written, agency_key, device_identity, make_sink, write_segment
from dock.client import DeviceCredentials, DockClient, enroll
from dock.export import find_recording, verify_recording
from dock.protocol import segment_id_for
from dock.receipts import UNSIGNED_RECEIPT_TYPE, SignedUnsignedReceipt
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.store import blob_key, unsigned_key
from dock.testing import DockHarness
from dock.unsigned import UnsignedTails

FAST = ShipperConfig(chunk_bytes=256, jitter=0.0)  # small chunks: the tail takes several


class PowerCut(BaseException):
    pass


def _wall() -> int:
    import time

    return time.time_ns() // 1000


def _crash_leaving_unsigned_bytes(root, ident, agency, monkeypatch) -> Written:
    sink = make_sink(root, ident, agency)
    w = Written("recU")
    write_segment(sink, w, 0, fragments=2, close=False)

    def dies(fields):
        raise PowerCut

    monkeypatch.setattr(sink.trail, "append", dies)
    with pytest.raises(PowerCut):
        sink.write_fragment(b"never signed " * 100, 12 * S, 13 * S)
    monkeypatch.undo()
    del sink
    sink: EvidenceSink = make_sink(root, ident, agency)  # the next start
    sink.recover()
    sink.close()
    return w


@pytest.fixture
def harness(tmp_path):
    h = DockHarness(tmp_path / "dock")
    yield h
    h.close()


def _enrolled(harness, ident) -> DeviceCredentials:
    got = enroll(
        harness.url,
        ident.device_id,
        ident,
        ident.public_key,
        harness.token(ident.device_id),
        wall_clock=_wall,
        expected_dock_key=harness.public_key,
    )
    return DeviceCredentials(ident.device_id, ident, got.dock_public_key)


def test_unsigned_bytes_are_shipped_marked_unsigned_and_the_dock_says_so(
    tmp_path, harness, monkeypatch
):
    ident, agency = device_identity("cam-tail-1"), agency_key()
    _crash_leaving_unsigned_bytes(tmp_path, ident, agency, monkeypatch)
    outbox = tmp_path / "outbox"
    aside = outbox / "segments" / "recU_0000.bwvseg.unsigned"
    tail_bytes = aside.read_bytes()
    assert tail_bytes, "the crash left bytes after the last signed chunk"
    sid = segment_id_for(next((outbox / "chain").glob("*.manifest.json")).read_bytes())

    client = DockClient(harness.url, _enrolled(harness, ident), wall_clock=_wall)
    shipper = Shipper(ChainOutbox(outbox), client, VirtualClock(), config=FAST)
    reports = shipper.drain()
    assert [r.action for r in reports] == ["shipped", "shipped", "idle"], reports

    # on the camera: nothing left to ship, the dock's receipt for the unsigned bytes kept
    assert not aside.exists()
    assert not list((outbox / "segments").iterdir())
    kept = json.loads((tmp_path / "receipts" / f"{sid}.unsigned.json").read_bytes())
    receipt = SignedUnsignedReceipt.from_json(kept)
    assert receipt.verify(harness.public_key)
    assert receipt.receipt.type == UNSIGNED_RECEIPT_TYPE
    assert (receipt.receipt.size, receipt.receipt.file) == (len(tail_bytes), aside.name)

    # at the dock: beside the segment, never as a segment of its own, logged as unsigned
    store = harness.dock.store
    with store.open_object(unsigned_key(ident.device_id, sid)) as f:
        assert f.read() == tail_bytes
    assert len(store.held_segments(ident.device_id)) == 2  # the segment and its end record
    (entry,) = [e for e in store.custody_log(limit=10_000) if e.action == "unsigned_received"]
    assert entry.segment_id == sid and entry.detail["signed"] is False
    assert entry.detail["size"] == len(tail_bytes)

    # the dock's verification: complete, and exact about what was never signed
    holdings, records = find_recording(store, "recU", ident.device_id)
    report, _ = verify_recording(store, ident.device_id, records)
    said = [f"{f.kind}: {f.detail}" for f in report.findings]
    assert not any("not given" in s for s in said), said
    assert not any(f.kind == "missing" for f in report.findings), said
    assert f"unsigned: {len(tail_bytes)} bytes unsigned, received" in "\n".join(said), said
    # and `bwv dock status --verify` calls it interrupted, not altered (point 11)
    from bwv.dock_cmd import collect_status

    status = collect_status(harness.store_dir, reverify=True)
    (rec,) = [r for r in status["recordings"] if r["recording_id"] == "recU"]
    assert rec["state"] == "ended_early", rec
    # and the agency can still read them: the same stream continues in them
    with store.open_object(blob_key(ident.device_id, sid)) as f:
        stored = f.read()
    d = decrypt_segment(stored + tail_bytes, agency)
    assert d.blobs[-1] == b"never signed " * 100
    client.close()


def test_unsigned_upload_resumes_after_a_cut_and_is_refused_if_not_what_was_recorded(
    tmp_path, harness, monkeypatch
):
    ident, agency = device_identity("cam-tail-2"), agency_key()
    _crash_leaving_unsigned_bytes(tmp_path, ident, agency, monkeypatch)
    outbox = tmp_path / "outbox"
    aside = outbox / "segments" / "recU_0000.bwvseg.unsigned"
    client = DockClient(harness.url, _enrolled(harness, ident), wall_clock=_wall)

    # the segment ships, then the camera leaves the dock half way through the unsigned bytes
    calls = {"n": 0}
    real = client.append_unsigned

    def undocked_midway(sid, offset, chunk):
        calls["n"] += 1
        if calls["n"] == 3:
            from dock.client import DockUnavailable

            raise DockUnavailable("connection lost")
        return real(sid, offset, chunk)

    monkeypatch.setattr(client, "append_unsigned", undocked_midway)
    shipper = Shipper(ChainOutbox(outbox), client, VirtualClock(), config=FAST)
    r = shipper.step()
    assert r.action == "failed" and aside.exists()
    assert (outbox / "segments" / "recU_0000.bwvseg").exists()  # kept until it all shipped
    manifest = next((outbox / "chain").glob("*.manifest.json")).read_bytes()
    sid = segment_id_for(manifest)
    assert client.unsigned_state(sid).offset == 2 * FAST.chunk_bytes  # the dock kept that

    shipper.clock.set(r.retry_at_us)
    assert [x.action for x in shipper.drain()] == ["shipped", "shipped", "idle"]
    assert not aside.exists()
    assert calls["n"] > 3

    # bytes that are not those the signed manifest names are not taken
    tails = UnsignedTails(harness.dock.store)
    from dock.unsigned import expected_unsigned

    exp = expected_unsigned(harness.dock.store, harness.dock.verifier, ident.device_id, sid)
    assert tails.state(ident.device_id, sid, exp).complete
    other = device_identity("cam-tail-3")
    _crash_leaving_unsigned_bytes(tmp_path / "b", other, agency, monkeypatch)
    client_b = DockClient(harness.url, _enrolled(harness, other), wall_clock=_wall)
    shipper_b = Shipper(
        ChainOutbox(tmp_path / "b" / "outbox"), client_b, VirtualClock(), config=FAST
    )
    aside_b = tmp_path / "b" / "outbox" / "segments" / "recU_0000.bwvseg.unsigned"
    aside_b.write_bytes(b"x" + aside_b.read_bytes()[1:])  # changed on the camera's disk
    assert [x.action for x in shipper_b.drain()] == ["shipped", "shipped", "idle"]
    assert aside_b.exists(), "bytes that are not what recovery recorded stay on the camera"
    client.close()
    client_b.close()
