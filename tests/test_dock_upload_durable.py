"""Uploads written straight into the staged file, fsync'd in batches (dock/upload_live.py):
the offset the dock reports never counts a byte a power cut could take, a chunk that fails
midway leaves nothing behind, two chunks of one upload never interleave, and a receipt is
given only for a file that is on disk for good and verified. A dock stopped in good order
keeps all it received.

The disk is modelled (``Disk``): every fsync the store makes is recorded with the file's size
at that moment; a power cut truncates each staged file to its last fsync'd size (an unsynced
append is lost, the pessimistic case). A restart is a real one: the store object is closed
and a new one opened on the same directory."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

import dock.store_uploads as store_uploads
from crypto.digests import MAGIC, stored_digest_of
from dock.enroll import issue_token, token_hash
from dock.protocol import Code, sha256_hex
from dock.receipts import Receipt, SignedReceipt, sign_receipt
from dock.store import StoreError
from dock.store_sqlite import DirectoryStore
from dock.testing import OutboxDevice
from dock.verify import ChainRecordVerifier

KEY = SigningKey(bytes(range(1, 33)))


def stored_blob(payload: bytes, chunk: int = 5000) -> bytes:
    """Bytes laid out as a stored segment file (header, then length-prefixed chunks): what
    the dock hashes into a stored digest (it never decrypts)."""
    out = bytearray(MAGIC + b"\x00\x02" + struct.pack(">I", 0) + bytes(104))
    for i in range(0, max(len(payload), 1), chunk):
        c = payload[i : i + chunk].ljust(17, b"\x00")
        out += struct.pack(">I", len(c)) + c
    assert stored_digest_of(bytes(out)) is not None
    return bytes(out)


class Disk:
    """What fsync made durable, per file (by inode): its size at the last fsync."""

    def __init__(self) -> None:
        self.synced: dict[tuple[int, int], int] = {}
        self._fsync = os.fsync

    def fsync(self, fd: int) -> None:
        self._fsync(fd)
        st_ = os.fstat(fd)
        self.synced[(st_.st_dev, st_.st_ino)] = st_.st_size

    def synced_size(self, path: Path) -> int:
        st_ = path.stat()
        return self.synced.get((st_.st_dev, st_.st_ino), 0)

    def power_cut(self, root: Path) -> None:
        """Every staged file loses what was written after its last fsync."""
        for path in root.glob("staging/*/*.part"):
            os.truncate(path, min(path.stat().st_size, self.synced_size(path)))


@pytest.fixture
def disk(monkeypatch):
    d = Disk()
    monkeypatch.setattr(store_uploads.os, "fsync", d.fsync)
    return d


class Dock:
    """A store on a directory, restarted for real: a new store object on the same files,
    after the old one was closed in good order (``restart``) or dropped as a killed process
    leaves it, its index connection gone and nothing more done (``crash``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = DirectoryStore(root, KEY)

    def restart(self) -> None:
        self.store.close()
        self.store = DirectoryStore(self.root, KEY)

    def crash(self, disk: Disk | None = None) -> None:
        """Killed; with ``disk``, the power cut too (what was not fsync'd is lost)."""
        self.store.db.close()
        if disk is not None:
            disk.power_cut(self.root)
        self.store = DirectoryStore(self.root, KEY)

    def close(self) -> None:
        self.store.close()


def _sign(fields: dict) -> SignedReceipt:
    return sign_receipt(KEY, Receipt(**fields))


def _device(tmp: Path, dock: Dock, payload: bytes) -> tuple[OutboxDevice, bytes, bytes, str]:
    dev = OutboxDevice(tmp / "outbox", "cam-1", seed=bytes(32))
    t = issue_token(dock.store, 0, device_id=dev.device_id, ttl_s=60)
    dock.store.enroll(dev.device_id, dev.public_key, token_hash(t.token), 1)
    blob = stored_blob(payload)
    rec = dev.add_segment(blob)
    line = rec.line
    sid = sha256_hex(line)
    dock.store.begin_upload(dev.device_id, sid, line, len(blob), stored_digest_of(blob) or "", 1)
    return dev, blob, line, sid


def _complete(dock: Dock, dev: OutboxDevice, line: bytes, sid: str, disk: Disk) -> SignedReceipt:
    """What dock/receive.py does: verify (the digest taken as the bytes came, or the
    file), then publish and record; the blob is durable before the receipt is signed."""
    store = dock.store
    with store.completing(dev.device_id, sid) as blob:
        received = store.received_digest(dev.device_id, sid)
        result = ChainRecordVerifier().verify(dev.public_key, line, blob, None, received=received)
        assert result.ok and result.fields is not None, result.problems
        staged = store._staged(dev.device_id, sid)
        size = result.fields.stored_size
        assert disk.synced_size(staged) == size == staged.stat().st_size  # durable first
        return store.commit_segment(dev.device_id, sid, result.fields, 2, _sign, False)


def _staged_size(dock: Dock, dev: OutboxDevice, sid: str) -> int:
    path = dock.store._staged(dev.device_id, sid)
    return path.stat().st_size if path.exists() else 0


# one step of an upload: a whole chunk, a chunk cut midway (after ``cut`` of its bytes), a
# restart of the dock in good order, a crash, or a power cut (a crash that loses what was
# never fsync'd)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("chunk"), st.integers(1, 30_000)),
        st.tuples(st.just("cut"), st.integers(1, 30_000), st.floats(0, 1)),
        st.tuples(st.just("restart")),
        st.tuples(st.just("crash")),
        st.tuples(st.just("power_cut")),
    ),
    max_size=14,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payload=st.binary(min_size=0, max_size=3000).map(lambda b: b * 20),
    plan=steps,
    sync_every=st.sampled_from([1, 7_000, 25_000, 1 << 30]),
)
def test_faults_leave_every_byte_received_once_and_a_receipt_only_for_a_durable_file(
    tmp_path_factory, monkeypatch, disk, payload, plan, sync_every
):
    monkeypatch.setattr(store_uploads, "SYNC_EVERY", sync_every)
    tmp = tmp_path_factory.mktemp("up")
    dock = Dock(tmp / "dock")
    try:
        dev, blob, line, sid = _device(tmp, dock, payload)
        sent = 0  # bytes put on the wire, to see that each is counted once
        for step in [*plan, ("finish",)]:
            state = dock.store.upload_state(dev.device_id, sid)
            assert state is not None and not state.complete
            # never more than is on disk, and never more than a power cut would leave
            # (the index's count; the one held in memory only while this process lives)
            assert state.offset <= _staged_size(dock, dev, sid)
            at = state.offset
            if step[0] == "restart":  # in good order: what was received is kept
                dock.restart()
                assert dock.store.upload_state(dev.device_id, sid).offset == at
                assert at == 0 or disk.synced_size(dock.store._staged(dev.device_id, sid)) >= at
            elif step[0] in ("crash", "power_cut"):
                dock.crash(disk if step[0] == "power_cut" else None)
                after = dock.store.upload_state(dev.device_id, sid)
                assert after is not None and after.offset <= at
                assert after.offset <= _staged_size(dock, dev, sid)
            elif step[0] == "chunk":
                chunk = blob[at : at + step[1]]
                state = dock.store.append_chunk(dev.device_id, sid, at, chunk)
                sent += len(chunk)
                assert state.offset == at + len(chunk)
            elif step[0] == "cut":
                chunk = blob[at : at + step[1]]
                w = dock.store.open_chunk(dev.device_id, sid, at)
                w.write(chunk[: int(len(chunk) * step[2])])
                state = dock.store.finish_chunk(w, ok=False)
                assert state.offset == at  # nothing of a failed chunk counts
                assert _staged_size(dock, dev, sid) == at  # nor stays
            else:  # the rest, then completion
                if at < len(blob):
                    dock.store.append_chunk(dev.device_id, sid, at, blob[at:])
                    sent += len(blob) - at
        receipt = _complete(dock, dev, line, sid, disk)
        assert receipt.verify(bytes(KEY.verify_key))
        assert receipt.receipt.stored_size == len(blob)
        with dock.store.open_object(f"{dev.device_id}/{sid}.blob") as f:
            assert f.read() == blob  # every byte, once, in order
        assert sent >= len(blob)
        received = [e for e in dock.store.custody_log() if e.action == "received"]
        assert [e.segment_id for e in received] == [sid]
    finally:
        dock.close()


def test_after_a_crash_before_the_fsync_the_offset_is_what_is_on_disk(tmp_path, disk):
    dock = Dock(tmp_path / "dock")
    try:
        dev, blob, _, sid = _device(tmp_path, dock, os.urandom(40_000))
        half = len(blob) // 2
        dock.store.append_chunk(dev.device_id, sid, 0, blob[:half])
        # written, not yet fsync'd: the live dock counts it, the index does not
        assert dock.store.upload_state(dev.device_id, sid).offset == half
        assert disk.synced_size(dock.store._staged(dev.device_id, sid)) == 0
        dock.crash(disk)  # killed, and the power cut: the unsynced half is gone
        assert _staged_size(dock, dev, sid) == 0
        assert dock.store.upload_state(dev.device_id, sid).offset == 0
        with pytest.raises(StoreError) as e:  # the camera's old offset is refused ...
            dock.store.append_chunk(dev.device_id, sid, half, blob[half:])
        assert (e.value.status, e.value.code) == (409, Code.OFFSET)
        # ... it asks again and sends from 0
        dock.store.append_chunk(dev.device_id, sid, 0, blob)
        assert dock.store.upload_state(dev.device_id, sid).offset == len(blob)
    finally:
        dock.close()


def test_a_crash_without_a_power_cut_resumes_from_the_durable_offset(tmp_path, monkeypatch, disk):
    monkeypatch.setattr(store_uploads, "SYNC_EVERY", 10_000)
    dock = Dock(tmp_path / "dock")
    try:
        dev, blob, line, sid = _device(tmp_path, dock, os.urandom(40_000))
        dock.store.append_chunk(dev.device_id, sid, 0, blob[:12_000])  # a sync point
        dock.store.append_chunk(dev.device_id, sid, 12_000, blob[12_000:15_000])  # not
        dock.crash()
        # the file holds 15 000 bytes; only the 12 000 fsync'd and counted are reported
        assert _staged_size(dock, dev, sid) == 15_000
        assert dock.store.upload_state(dev.device_id, sid).offset == 12_000
        dock.store.append_chunk(dev.device_id, sid, 12_000, blob[12_000:])
        # resumed by a fresh process: no digest taken from byte 0, the file is read
        assert dock.store.received_digest(dev.device_id, sid) is None
        assert _complete(dock, dev, line, sid, disk).receipt.stored_size == len(blob)
    finally:
        dock.close()


def test_the_digest_taken_as_the_bytes_came_is_the_files(tmp_path, disk):
    dock = Dock(tmp_path / "dock")
    try:
        dev, blob, line, sid = _device(tmp_path, dock, os.urandom(30_000))
        for at in range(0, len(blob), 4096):
            dock.store.append_chunk(dev.device_id, sid, at, blob[at : at + 4096])
        d = dock.store.received_digest(dev.device_id, sid)
        assert d is not None and d.size == len(blob)
        assert d.hexdigest() == stored_digest_of(blob)
        _complete(dock, dev, line, sid, disk)
    finally:
        dock.close()


def test_two_chunks_of_one_upload_are_never_written_at_once(tmp_path, disk):
    dock = Dock(tmp_path / "dock")
    try:
        dev, blob, _, sid = _device(tmp_path, dock, os.urandom(20_000))
        w = dock.store.open_chunk(dev.device_id, sid, 0)
        w.write(blob[:1000])
        with pytest.raises(StoreError) as e:  # a second PATCH while the first is written
            dock.store.open_chunk(dev.device_id, sid, 0)
        assert (e.value.status, e.value.code) == (409, Code.OFFSET)
        assert dock.store.finish_chunk(w, ok=True).offset == 1000
        dock.store.append_chunk(dev.device_id, sid, 1000, blob[1000:])
        assert dock.store.upload_state(dev.device_id, sid).offset == len(blob)
    finally:
        dock.close()


def test_a_chunk_past_the_declared_size_is_refused_and_cut_off(tmp_path, disk):
    dock = Dock(tmp_path / "dock")
    try:
        dev, blob, _, sid = _device(tmp_path, dock, os.urandom(5_000))
        with pytest.raises(StoreError) as e:
            dock.store.append_chunk(dev.device_id, sid, 0, blob + b"more")
        assert e.value.status == 413
        assert dock.store.upload_state(dev.device_id, sid).offset == 0
        assert _staged_size(dock, dev, sid) == 0
    finally:
        dock.close()


# -- a chunk that outlives its upload, and a disk that fails mid-chunk ----------------------


def test_a_chunk_still_arriving_when_its_upload_started_again_counts_for_nothing(
    tmp_path, disk, monkeypatch
):
    """A stalled chunk whose upload expired and was created anew meanwhile (or, with a
    shared index, was started again here because another dock moved it on) neither counts
    its bytes nor touches the new upload's file, whether it then ends well or badly: the
    new upload's bytes and offset are the camera's, and its receipt covers exactly them."""
    monkeypatch.setattr(store_uploads, "SYNC_EVERY", 1)  # every chunk fsync'd and counted
    dock = Dock(tmp_path / "dock")
    try:
        dev, blob, line, sid = _device(tmp_path, dock, os.urandom(20_000))
        store = dock.store
        store.append_chunk(dev.device_id, sid, 0, blob[:6000])
        for ends_well in (True, False):
            stalled = store.open_chunk(dev.device_id, sid, 6000)
            stalled.write(blob[6000:8000])  # ... and then nothing for a long time
            assert store.expire_uploads(10**15, 1) == 1  # abandoned: dropped with its file
            store.begin_upload(dev.device_id, sid, line, len(blob), stored_digest_of(blob), 2)
            store.append_chunk(dev.device_id, sid, 0, blob[:3000])
            with pytest.raises(StoreError) as err:
                store.finish_chunk(stalled, ends_well)
            assert err.value.status == 409 and err.value.code == Code.OFFSET
            assert _staged_size(dock, dev, sid) == 3000
            assert store.upload_state(dev.device_id, sid).offset == 3000
            assert store._upload_row_of(dev.device_id, sid) == (len(blob), 3000)
            store.append_chunk(dev.device_id, sid, 3000, blob[3000:6000])
        store.append_chunk(dev.device_id, sid, 6000, blob[6000:])
        receipt = _complete(dock, dev, line, sid, disk)
        assert receipt.receipt.stored_digest == stored_digest_of(blob)
        with store.objects.open(f"{dev.device_id}/{sid}.blob") as held:
            assert held.read() == blob
    finally:
        dock.close()


class _Failing:
    """The staged file as a full disk makes it: writes (or closing) fail with ENOSPC."""

    def __init__(self, f, on: str) -> None:
        self._f, self._on = f, on

    def write(self, data):
        if self._on == "write":
            raise OSError(28, "No space left on device")
        return self._f.write(data)

    def close(self):
        self._f.close()
        if self._on == "close":
            raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("on", ["write", "close"])
def test_a_disk_full_mid_chunk_counts_nothing_and_the_upload_goes_on(tmp_path, disk, on):
    """A write that fails refuses the chunk, its bytes neither counted nor kept; a close that
    fails after every byte was written (unbuffered: they are in the file) counts what is
    there. Either way the upload is not left marked as receiving: the camera's next chunk,
    at the offset the dock gives, is taken."""
    dock = Dock(tmp_path / "dock")
    try:
        dev, blob, line, sid = _device(tmp_path, dock, os.urandom(12_000))
        store = dock.store
        store.append_chunk(dev.device_id, sid, 0, blob[:4000])
        w = store.open_chunk(dev.device_id, sid, 4000)
        w.f = _Failing(w.f, on)
        with pytest.raises(OSError):
            try:
                w.write(blob[4000:9000])
                ok = True
            except OSError:
                ok = False
                raise
            finally:
                store.finish_chunk(w, ok)
        held = 4000 if on == "write" else 9000
        assert store.upload_state(dev.device_id, sid).offset == held
        assert _staged_size(dock, dev, sid) == held
        store.append_chunk(dev.device_id, sid, held, blob[held:])  # taken: not "busy"
        assert _complete(dock, dev, line, sid, disk).receipt.stored_size == len(blob)
    finally:
        dock.close()
