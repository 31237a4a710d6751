"""Several docks on one PostgreSQL index (each a ``DirectoryStore`` with its own root, as on
its own machine): one custody log and one transparency log, never forked, however many
write at once; an upload begun on one dock and continued on another; the same segment
committed on two docks at once, receipted once; the device lock held across docks."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import dock.instance as instance
from dock.keys import DOCK_KEY_FILE
from dock.objects import DirectoryObjects
from dock.protocol import segment_id_for
from dock.store import StoreError
from dock.store_sqlite import DirectoryStore
from dock.testing import DockHarness, OutboxDevice, declared_digest, segment_bytes
from tests.test_store_postgres import (
    DEV,
    KEY,
    PUB,
    chain,
    check_logs,
    commit,
    enrol,
    ship,
)

THREADS = 4
ENTRIES = 25


@pytest.fixture
def docks(tmp_path, pg_url):
    """Two docks sharing the index and the object store (the agency's bucket)."""
    objects = tmp_path / "objects"
    a = DirectoryStore(tmp_path / "a", KEY, DirectoryObjects(objects), pg_url)
    b = DirectoryStore(tmp_path / "b", KEY, DirectoryObjects(objects), pg_url)
    yield a, b
    a.close()
    b.close()


def test_two_docks_writing_at_once_keep_one_unbroken_log(docks):
    a, b = docks
    enrol(a, "cam-a")
    enrol(b, "cam-b")
    recs = {"cam-a": chain(6, "cam-a", 500), "cam-b": chain(6, "cam-b", 500)}
    start = threading.Barrier(2 * THREADS + 2)

    def notes(store, who: str) -> None:
        start.wait()
        for i in range(ENTRIES):
            store.log("technician", "note", i, detail={"who": who, "i": i})

    def segments(store, device_id: str) -> None:
        start.wait()
        for rec in recs[device_id]:
            ship(store, rec, 100)

    with ThreadPoolExecutor(2 * THREADS + 2) as pool:
        jobs = [
            pool.submit(notes, s, f"{n}{t}")
            for n, s in (("a", a), ("b", b))
            for t in range(THREADS)
        ]
        jobs += [pool.submit(segments, a, "cam-a"), pool.submit(segments, b, "cam-b")]
        for j in jobs:
            j.result()

    for store in (a, b):  # both docks read the one log
        entries = check_logs(store)
    assert sum(e.action == "note" for e in entries) == 2 * THREADS * ENTRIES
    assert sum(e.action == "received" for e in entries) == 12
    assert a.log_leaves(limit=100_000) == b.log_leaves(limit=100_000)
    records = [leaf for leaf in a.log_leaves(limit=100_000) if leaf.kind == "record"]
    assert len(records) == 12
    for device_id in recs:
        assert [h.seq for h in b.held_segments(device_id)] == list(range(6))


def test_an_upload_begun_on_one_dock_starts_again_at_0_on_another(docks):
    a, b = docks
    enrol(a)
    (rec,) = chain(1, size=4000)
    line, sid, fields, blob = rec
    a.begin_upload(DEV, sid, line, len(blob), declared_digest(blob), 1)
    a.append_chunk(DEV, sid, 0, blob[:2000])
    assert a.upload_state(DEV, sid).offset == 2000
    # the camera turns to dock B: its bytes are on A, so B starts the upload again
    assert b.upload_state(DEV, sid).offset == 0
    assert b.begin_upload(DEV, sid, line, len(blob), declared_digest(blob), 2).offset == 0
    b.append_chunk(DEV, sid, 0, blob[:1000])
    # back to A, which holds more than the 1000 bytes counted: it goes on from 1000
    assert a.upload_state(DEV, sid).offset == 1000
    a.append_chunk(DEV, sid, 1000, blob[1000:3000])
    # and to B again, which holds only 1000: again from 0, and to the end
    state = b.upload_state(DEV, sid)
    assert state.offset == 0
    b.append_chunk(DEV, sid, 0, blob)
    receipt = commit(b, rec, 3)
    assert receipt.verify(PUB) and receipt.receipt.stored_size == len(blob)
    with a.open_object(f"{DEV}/{sid}.blob") as f:
        assert f.read() == blob
    assert a.upload_state(DEV, sid).receipt == receipt  # A answers with B's receipt
    assert [e.action for e in check_logs(a)].count("received") == 1
    a.expire_uploads(4, 10**12)  # A's staged bytes of an upload gone from the index go
    assert not (a.staging / DEV / f"{sid}.part").exists()


def test_completing_on_a_dock_without_the_bytes_asks_for_them_again(docks):
    a, b = docks
    enrol(a)
    (rec,) = chain(1)
    line, sid, fields, blob = rec
    a.begin_upload(DEV, sid, line, len(blob), declared_digest(blob), 1)
    a.append_chunk(DEV, sid, 0, blob)
    with pytest.raises(StoreError) as e:
        commit(b, rec, 2)
    assert e.value.status == 409 and e.value.code == "incomplete"
    assert a.upload_state(DEV, sid).offset == 0  # restarted: the camera sends it again
    b.append_chunk(DEV, sid, 0, blob)
    assert commit(b, rec, 3).verify(PUB)


def test_the_same_segment_committed_on_two_docks_at_once_is_receipted_once(docks):
    a, b = docks
    enrol(a)
    (rec,) = chain(1, size=20_000)
    line, sid, fields, blob = rec
    a.begin_upload(DEV, sid, line, len(blob), declared_digest(blob), 1)
    a.append_chunk(DEV, sid, 0, blob)
    (b.staging / DEV).mkdir(parents=True, exist_ok=True)  # B holds the bytes too
    shutil.copy(a.staging / DEV / f"{sid}.part", b.staging / DEV / f"{sid}.part")
    start = threading.Barrier(2)

    def complete(store):
        start.wait()
        return commit(store, rec, 5)

    with ThreadPoolExecutor(2) as pool:
        ra, rb = pool.map(complete, (a, b))
    assert ra == rb and ra.verify(PUB)
    assert a.db.q("SELECT COUNT(*) FROM segments")[0][0] == 1
    entries = check_logs(a)
    assert [e.action for e in entries].count("received") == 1
    assert [leaf.kind for leaf in a.log_leaves()].count("record") == 1


def test_the_device_lock_holds_across_docks(docks):
    a, b = docks
    order: list[str] = []
    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with a._device(DEV):
            order.append("a has it")
            held.set()
            release.wait(30)
            order.append("a lets go")

    def second() -> None:
        held.wait(30)
        with b._device(DEV):
            order.append("b has it")

    t1, t2 = threading.Thread(target=first), threading.Thread(target=second)
    t1.start()
    t2.start()
    held.wait(30)
    # wait (bounded) until PostgreSQL shows B's lock request waiting behind A's
    for _ in range(500):
        waiting = a.db.q("SELECT COUNT(*) FROM pg_locks WHERE locktype='advisory' AND NOT granted")
        if waiting[0][0]:
            break
        threading.Event().wait(0.01)
    assert waiting[0][0] == 1
    release.set()
    t1.join(30)
    t2.join(30)
    assert order == ["a has it", "a lets go", "b has it"]


def test_a_camera_that_turns_to_another_dock_mid_upload_ships_its_segment_once(
    tmp_path, pg_url, monkeypatch
):
    """Two dock servers (one agency key, one index, one object store): the camera sends
    half a segment to A, then talks to B, which asks for it from 0, and receipts it."""
    objects = DirectoryObjects(tmp_path / "objects")

    def fleet_store(root, key):
        return DirectoryStore(root, key, objects, pg_url)

    monkeypatch.setattr(instance, "open_store", fleet_store)
    a = DockHarness(tmp_path / "a")
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / DOCK_KEY_FILE, tmp_path / "b" / DOCK_KEY_FILE)
    b = DockHarness(tmp_path / "b")
    try:
        assert a.public_key == b.public_key
        dev = OutboxDevice(tmp_path / "dev", "cam-moves")
        dev.creds = a.enroll(dev)  # enrolled once: every dock of the agency knows it
        blob = segment_bytes(50_000, 3)
        rec = dev.add_segment(blob)
        sid = segment_id_for(rec.line)
        with a.client(dev.creds) as ca:
            ca.create_upload(sid, rec.line, len(blob), declared_digest(blob))
            assert ca.append(sid, 0, blob[:20_000]).offset == 20_000
        with b.client(dev.creds) as cb:
            state = cb.upload_state(sid)
            assert state.offset == 0 and not state.complete
            state = cb.append(sid, 0, blob[:30_000])
            state = cb.append(sid, state.offset, blob[state.offset :])
            receipt = cb.complete(sid)
        assert receipt.verify(a.public_key) and receipt.receipt.stored_size == len(blob)
        with a.client(dev.creds) as ca:  # A answers with the same receipt
            assert ca.upload_state(sid).receipt.receipt == receipt.receipt
        entries = check_logs(a.dock.store, a.public_key)
        assert [e.action for e in entries].count("received") == 1
        assert [h.segment_id for h in b.dock.store.held_segments(dev.device_id)] == [sid]
    finally:
        a.close()
        b.close()
