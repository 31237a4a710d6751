"""A segment of one chunk at most ships in one request (``PUT /v1/segments/{id}``,
dock/routes/whole.py, dock/ship_whole.py), signed by the stored digest its record names: the
dock takes it only if the bytes are that digest, answers an upload it holds already with its
state without taking the body, and a camera falls back to chunks where the dock says so."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

import dock.verify
from capture.clock import VirtualClock
from dock.client import DockClient, DockRefused
from dock.protocol import (
    DIGEST_SHA256,
    DIGEST_STORED,
    H_CONTENT_DIGEST,
    H_UPLOAD_CHECKSUM,
    H_UPLOAD_OFFSET,
    H_UPLOAD_RECORD,
    Code,
    ProtocolError,
    b64e,
    content_digest,
    parse_body_digest,
    parse_content_digest,
    segment_id_for,
    stored_content_digest,
)
from dock.server import DockConfig, wall_clock_us
from dock.ship_chunks import declared
from dock.ship_whole import fits_whole, put_whole
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.store import blob_key
from dock.testing import DockHarness, Fault, FaultProxy, OutboxDevice, segment_bytes

SIZE = 300_000
CONFIG = ShipperConfig(chunk_bytes=1 << 20, jitter=0.0)
_ids = iter(range(1000))


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"))
    yield h
    h.close()


class CountingClient(DockClient):
    """A real client that notes each request it makes (method, path)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.calls: list[tuple[str, str]] = []

    def _call(self, method, path, **kw):
        self.calls.append((method, path))
        return super()._call(method, path, **kw)


def _device(harness, tmp_path: Path, size: int = SIZE):
    dev = OutboxDevice(tmp_path / "outbox", f"cam-whole-{next(_ids):03d}")
    creds = harness.enroll(dev)
    rec = dev.add_segment(segment_bytes(size, seed=3))
    blob = tmp_path / "outbox" / "segments" / rec.record["file"]
    digest, n = declared(rec.line, blob)
    return dev, creds, blob, rec.line, segment_id_for(rec.line), digest, n


def _ship(dev, creds, url, config=CONFIG) -> tuple[Shipper, CountingClient]:
    client = CountingClient(url, creds, wall_clock=wall_clock_us, timeout=10)
    sh = Shipper(ChainOutbox(dev.root), client, VirtualClock(), config=config)
    return sh, client


def _segment_calls(client: CountingClient) -> list[tuple[str, str]]:
    return [(m, p.rsplit("/", 1)[-1][:8]) for m, p in client.calls if "/v1/segments/" in p]


def _staged_size(harness, device_id: str, sid: str) -> int:
    return harness.dock.store._staged(device_id, sid).stat().st_size


def test_a_segment_of_one_chunk_ships_in_one_request_and_its_receipt_names_its_bytes(
    harness, tmp_path
):
    dev, creds, blob, manifest, sid, digest, size = _device(harness, tmp_path)
    data = blob.read_bytes()
    sh, client = _ship(dev, creds, harness.url)
    r = sh.step()
    client.close()
    assert r.action == "shipped" and r.bytes_sent == size
    assert _segment_calls(client) == [("PUT", sid[:8])]  # no create, no chunk, no complete
    assert not blob.exists()
    [held] = harness.dock.store.held_segments(dev.device_id)
    assert (held.segment_id, held.stored_digest, held.stored_size) == (sid, digest, size)
    with harness.dock.store.open_object(blob_key(dev.device_id, sid)) as f:
        assert f.read() == data


def test_a_record_without_a_file_ships_in_one_request(harness, tmp_path):
    """An end record has no stored file: its creation completes it, and the answer carries
    its receipt (no separate completion)."""
    dev, creds, blob, manifest, sid, digest, size = _device(harness, tmp_path)
    end = dev.end_recording()
    sh, client = _ship(dev, creds, harness.url)
    reports = sh.drain()
    client.close()
    assert [r.action for r in reports] == ["shipped", "shipped", "idle"]
    end_sid = segment_id_for(end.line)
    assert _segment_calls(client) == [("PUT", sid[:8]), ("POST", end_sid[:8])]
    held = harness.dock.store.held_segments(dev.device_id)
    assert [h.segment_id for h in held] == [sid, end_sid]


def test_the_dock_fsyncs_each_file_of_a_segment_once(harness, tmp_path, monkeypatch):
    """The staged file, fsync'd before it is verified, is not fsync'd again as it becomes
    the object; nor is the manifest's object as it is renamed into place."""
    dev, creds, blob, manifest, sid, digest, size = _device(harness, tmp_path)
    synced: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        st = os.fstat(fd)
        if threading.current_thread() is not threading.main_thread() and stat.S_ISREG(st.st_mode):
            synced.append(st.st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", counted)
    sh, client = _ship(dev, creds, harness.url)
    r = sh.step()
    client.close()
    assert r.action == "shipped"
    store = harness.dock.store
    objects = {
        os.stat(store.objects._path(k)).st_ino
        for k in (blob_key(dev.device_id, sid), f"{dev.device_id}/{sid}.manifest")
    }
    assert objects <= set(synced)  # both made durable...
    assert sorted(synced) == sorted(set(synced))  # ...and no file twice


def test_the_dock_reads_a_segments_record_once_from_creation_to_receipt(
    harness, tmp_path, monkeypatch
):
    """The record is checked at creation (its fields, its agency) and at completion: the
    dock's verifier reads its fields once, not at each check; the camera's outbox once
    (the step that ships it names its stored digest from what the outbox read)."""
    reads: list[tuple[bool, bytes]] = []
    real = dock.verify.parse_line

    def counted(line: bytes):
        reads.append((threading.current_thread() is threading.main_thread(), line))
        return real(line)

    dev, creds, blob, manifest, sid, digest, size = _device(harness, tmp_path)
    monkeypatch.setattr(dock.verify, "parse_line", counted)
    sh, client = _ship(dev, creds, harness.url)
    r = sh.step()
    client.close()
    assert r.action == "shipped"
    assert reads.count((True, manifest)) == 1  # the camera (the test's thread)
    assert reads.count((False, manifest)) == 1  # the dock (its server's threads)


def test_a_whole_body_that_is_not_its_stored_digest_is_refused_and_counts_nothing(
    harness, tmp_path
):
    dev, creds, blob, manifest, sid, digest, size = _device(harness, tmp_path)
    damaged = bytearray(blob.read_bytes())
    damaged[size // 2] ^= 1  # one bit, the length unchanged
    with DockClient(harness.url, creds, wall_clock=wall_clock_us) as client:
        with pytest.raises(DockRefused) as exc:
            client.put_segment(sid, manifest, digest, size, _Body(bytes(damaged)))
        assert exc.value.status == 460 and exc.value.code == Code.CHECKSUM
        state = client.upload_state(sid)
    assert state is not None and state.offset == 0 and not state.complete
    assert _staged_size(harness, dev.device_id, sid) == 0  # cut off the staged file again
    assert harness.dock.store.held_segments(dev.device_id) == []
    sh, client = _ship(dev, creds, harness.url)  # the true bytes then go, whole
    assert sh.step().action == "shipped"
    client.close()
    assert _segment_calls(client) == [("PUT", sid[:8])]


def test_an_upload_held_already_is_answered_with_where_it_stands_without_its_body(
    harness, tmp_path
):
    dev, creds, blob, manifest, sid, digest, size = _device(harness, tmp_path)
    data = blob.read_bytes()
    with DockClient(harness.url, creds, wall_clock=wall_clock_us) as client:
        client.create_upload(sid, manifest, size, digest)
        half = client.append(sid, 0, data[: size // 2], hashlib.sha256(data[: size // 2]).digest())
        assert half.offset == size // 2
        state, took = client.put_segment(sid, manifest, digest, size, _Body(data))
        assert not took and state.offset == size // 2 and not state.complete  # part of it
    sh, client = _ship(dev, creds, harness.url)
    assert sh.step().action == "shipped"
    client.close()
    [held] = harness.dock.store.held_segments(dev.device_id)
    assert held.stored_size == size
    with DockClient(harness.url, creds, wall_clock=wall_clock_us) as client:  # and all of it
        state, took = client.put_segment(sid, manifest, digest, size, _Body(data))
    assert not took and state.complete and state.receipt is not None
    assert state.receipt.receipt.stored_digest == digest


def test_a_whole_body_cut_on_the_way_counts_nothing_and_the_camera_goes_on_in_chunks(
    harness, tmp_path
):
    dev, creds, blob, manifest, sid, digest, size = _device(harness, tmp_path)
    upstream = ("127.0.0.1", harness.server.port)
    clock = VirtualClock()
    with FaultProxy(upstream, [Fault("up", 150_000)]) as proxy:  # mid-body
        client = CountingClient(proxy.url, creds, wall_clock=wall_clock_us, timeout=10)
        sh = Shipper(ChainOutbox(dev.root), client, clock, config=CONFIG)
        first = sh.step()
        assert first.action == "failed"
        assert blob.exists()
        state = harness.dock.store.upload_state(dev.device_id, sid)
        assert state is None or state.offset == 0  # nothing counted of the cut body
        assert first.retry_at_us is not None
        clock.set(first.retry_at_us)
        assert sh.step().action == "shipped"
        client.close()
    calls = _segment_calls(client)
    assert calls[0] == ("PUT", sid[:8])
    assert ("PATCH", sid[:8]) in calls[1:]  # after a failure: resumable chunks
    assert not blob.exists()


def test_the_stored_digest_signs_a_whole_segment_and_nothing_else(harness, tmp_path):
    dev, creds, blob, manifest, sid, digest, size = _device(harness, tmp_path)
    data = blob.read_bytes()
    with DockClient(harness.url, creds, wall_clock=wall_clock_us) as client:
        client.create_upload(sid, manifest, size, digest)
        with pytest.raises(DockRefused) as exc:  # a chunk signed by a stored digest
            client._call(
                "PATCH",
                f"/v1/segments/{sid}",
                content=data,
                headers={
                    H_UPLOAD_OFFSET: "0",
                    H_UPLOAD_CHECKSUM: "sha256 " + b64e(hashlib.sha256(data).digest()),
                    H_CONTENT_DIGEST: stored_content_digest(digest),
                },
            )
        assert exc.value.status == 400 and "bwv-stored" in exc.value.detail
        with pytest.raises(DockRefused) as exc:  # a whole segment signed by its SHA-256
            client._call(
                "PUT",
                f"/v1/segments/{sid}",
                content=data,
                headers={H_UPLOAD_RECORD: b64e(manifest), H_CONTENT_DIGEST: content_digest(data)},
            )
        assert exc.value.status == 400
        assert client.upload_state(sid).offset == 0


def test_a_dock_that_takes_smaller_bodies_is_sent_chunks_and_not_asked_again(tmp_path):
    dock = DockHarness(tmp_path / "dock", config=DockConfig(max_chunk_bytes=64 << 10))
    try:
        dev = OutboxDevice(tmp_path / "outbox", "cam-small-bodies")
        creds = dock.enroll(dev)
        for i in range(3):
            dev.add_segment(segment_bytes(200_000, seed=i))
        sh, client = _ship(dev, creds, dock.url)
        reports = sh.drain()
        client.close()
        assert [r.action for r in reports] == ["shipped"] * 3 + ["idle"]
        puts = [c for c in _segment_calls(client) if c[0] == "PUT"]
        assert len(puts) == 1  # refused once (413), then chunks only
        assert len(dock.dock.store.held_segments(dev.device_id)) == 3
    finally:
        dock.close()


@pytest.mark.parametrize(
    ("status", "code", "chunks_only"),
    [
        (405, None, True),  # a dock without the route
        (401, Code.UNSIGNED, True),  # an older dock: it reads no bwv-stored digest
        (413, Code.BODY_TOO_LARGE, True),
        (460, Code.CHECKSUM, False),  # this time: chunks, each with its own checksum
    ],
)
def test_what_a_refused_whole_segment_means_to_the_camera(tmp_path, status, code, chunks_only):
    seg_dir = tmp_path / "outbox"
    dev = OutboxDevice(seg_dir, "cam-refusals")
    dev.add_segment(segment_bytes(10_000, seed=1))
    [seg] = ChainOutbox(dev.root).finished()

    class Refusing:
        def put_segment(self, *a, **kw):
            raise DockRefused(status, "no", code)

    manifest = seg.manifest_path.read_bytes()
    digest, size = declared(manifest, seg.blob_path)
    answer = put_whole(Refusing(), seg, segment_id_for(manifest), manifest, digest, size)
    assert answer.chunks_only is chunks_only
    assert answer.state is None and answer.receipt is None


def test_a_refusal_about_the_device_is_not_taken_for_a_dock_without_the_route(tmp_path):
    dev = OutboxDevice(tmp_path / "outbox", "cam-revoked")
    dev.add_segment(segment_bytes(10_000, seed=1))
    [seg] = ChainOutbox(dev.root).finished()

    class Revoked:
        def put_segment(self, *a, **kw):
            raise DockRefused(403, "revoked", Code.REVOKED)

    manifest = seg.manifest_path.read_bytes()
    digest, size = declared(manifest, seg.blob_path)
    with pytest.raises(DockRefused):
        put_whole(Revoked(), seg, segment_id_for(manifest), manifest, digest, size)


def test_the_next_file_is_read_ahead_while_the_dock_completes_this_one(
    harness, tmp_path, monkeypatch
):
    """On the camera's card the file to send next is read into memory by the kernel while
    the dock completes the one before (and each file ahead of its sending)."""
    dev = OutboxDevice(tmp_path / "outbox", f"cam-whole-{next(_ids):03d}")
    creds = harness.enroll(dev)
    recs = [dev.add_segment(segment_bytes(50_000, seed=i)) for i in range(3)]
    names = [r.record["file"] for r in recs]
    by_sid = {segment_id_for(r.line): r.record["file"] for r in recs}
    events: list[tuple[str, str]] = []
    real = os.posix_fadvise

    def advise(fd, offset, length, how):
        if how == os.POSIX_FADV_WILLNEED:
            events.append(("ahead", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        return real(fd, offset, length, how)

    monkeypatch.setattr(os, "posix_fadvise", advise)

    class Noting(CountingClient):
        def put_segment(self, sid, *a, **kw):
            events.append(("put", by_sid[sid]))
            return super().put_segment(sid, *a, **kw)

    class NotingOutbox(ChainOutbox):
        def delete(self, segment, receipt):
            events.append(("deleted", segment.blob_path.name))
            return super().delete(segment, receipt)

    client = Noting(harness.url, creds, wall_clock=wall_clock_us, timeout=10)
    sh = Shipper(NotingOutbox(dev.root), client, VirtualClock(), config=CONFIG)
    assert [r.action for r in sh.drain()] == ["shipped"] * 3 + ["idle"]
    client.close()
    for before, name in zip(names, names[1:], strict=False):
        sent, done = events.index(("put", before)), events.index(("deleted", before))
        ahead = [i for i, e in enumerate(events) if e == ("ahead", name)]
        assert any(sent < i < done for i in ahead), events  # while the one before completed


def test_which_records_go_whole(tmp_path):
    dev = OutboxDevice(tmp_path / "outbox", "cam-fits")
    dev.add_segment(segment_bytes(10_000, seed=1))
    dev.end_recording()
    seg, end = ChainOutbox(dev.root).finished()
    assert fits_whole(seg, 10_000) and not fits_whole(seg, 9_999)
    assert not fits_whole(end, 1 << 20)  # an end record has no file: created and completed
    assert not fits_whole(None, 1 << 20)


def test_the_content_digest_names_its_algorithm():
    raw = hashlib.sha256(b"x").digest()
    assert parse_body_digest(content_digest(b"x")) == (DIGEST_SHA256, raw)
    stored = stored_content_digest(raw.hex())
    assert parse_body_digest(stored) == (DIGEST_STORED, raw)
    with pytest.raises(ProtocolError):  # where only a body's SHA-256 is taken
        parse_content_digest(stored)
    for bad in ("sha-512=:" + b64e(raw) + ":", "bwv-stored=:" + b64e(raw[:16]) + ":", ""):
        with pytest.raises(ProtocolError):
            parse_body_digest(bad)


class _Body:
    """A file-like body in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def read(self, n: int) -> bytes:
        out = bytes(self._data[self._at : self._at + n])
        self._at += len(out)
        return out
