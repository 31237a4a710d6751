"""The dock store on a shared PostgreSQL index: the same ``Store`` contract as the embedded
SQLite one (each contract test runs on both), its schema migrations, and what the index
database layer (dock/sqldb.py) promises: ``?`` SQL translated, failures as 503/507, a
dropped connection made again.

Several docks on one index: tests/test_store_postgres_fleet.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from nacl.signing import SigningKey

from dock.custody import verify_custody_log
from dock.enroll import issue_token, token_hash
from dock.leaves import custody_leaf
from dock.migrations import load
from dock.objects import DirectoryObjects
from dock.protocol import sha256_hex
from dock.receipts import Receipt, SignedReceipt, sign_receipt
from dock.sqldb import open_database
from dock.sqldb_postgres import redact_url, translate
from dock.store import StoreError, storage_failure
from dock.store_sqlite import INDEX_FILE, DirectoryStore
from dock.testing import declared_digest, segment_bytes
from dock.verify import ManifestFields

KEY = SigningKey(bytes(range(1, 33)))
PUB = bytes(KEY.verify_key)
DEV = "cam-1"

# --------------------------------------------------------------------------- the server
# ``pg_url`` (a fresh database, dropped after) is tests/servers.py's fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request):
    """The index a contract test runs on: None (the embedded SQLite file) or a URL."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def store(tmp_path, index):
    s = DirectoryStore(tmp_path / "dock", KEY, index=index)
    yield s
    s.close()


# --------------------------------------------------------------------------- records


def record(seq: int, prev: str | None, blob: bytes, device_id: str = DEV):
    """A chain record as the store sees it once verified: its line, id and fields."""
    line = json.dumps(
        {"d": device_id, "seq": seq, "prev": prev, "h": declared_digest(blob)}
    ).encode()
    line += b"\n"
    fields = ManifestFields(
        "manifest",
        device_id,
        "kid",
        "rec1",
        seq,
        seq,
        declared_digest(blob),
        len(blob),
        prev,
        sha256_hex(line),
    )
    return line, sha256_hex(line), fields


def sign(fields: dict) -> SignedReceipt:
    return sign_receipt(KEY, Receipt(**fields))


def chain(n: int, device_id: str = DEV, size: int = 3000):
    """``n`` linked records with their blobs."""
    out, prev = [], None
    for seq in range(n):
        blob = segment_bytes(size, None)
        line, sid, fields = record(seq, prev, blob, device_id)
        out.append((line, sid, fields, blob))
        prev = fields.manifest_sha256
    return out


def commit(store, rec, now: int, gap: bool = False) -> SignedReceipt:
    line, sid, fields, blob = rec
    with store.completing(fields.device_id, sid) as f:
        assert f.read() == blob
        return store.commit_segment(fields.device_id, sid, fields, now, sign, gap)


def ship(store, rec, now: int, gap: bool = False) -> SignedReceipt:
    line, sid, fields, blob = rec
    store.begin_upload(fields.device_id, sid, line, len(blob), declared_digest(blob), now)
    store.append_chunk(fields.device_id, sid, 0, blob)
    return commit(store, rec, now, gap)


def enrol(store, device_id: str = DEV) -> None:
    t = issue_token(store, 0, device_id=device_id, ttl_s=60)
    store.enroll(device_id, PUB, token_hash(t.token), 1)


def check_logs(store, public_key: bytes = PUB) -> list:
    """The custody log verifies, and its leaves are contiguous from 0 (records' and
    entries' leaves both, each entry's leaf its exact bytes)."""
    entries = store.custody_log(limit=100_000)
    assert [e.index for e in entries] == list(range(1, len(entries) + 1))
    assert verify_custody_log(entries, public_key) == []
    leaves = store.log_leaves(limit=100_000)
    assert (
        [leaf.index for leaf in leaves] == list(range(len(leaves))) == list(range(store.log_size()))
    )
    custody = {int(leaf.ref): leaf for leaf in leaves if leaf.kind == "custody"}
    assert sorted(custody) == [e.index for e in entries]
    assert all(custody[e.index].data == custody_leaf(e).data for e in entries)
    return entries


# --------------------------------------------------------------------------- the contract


def test_enrol_upload_with_resume_commit_and_gaps(store):
    enrol(store)
    recs = chain(3)
    line, sid, fields, blob = recs[0]
    state = store.begin_upload(DEV, sid, line, len(blob), declared_digest(blob), 10)
    assert (state.offset, state.complete) == (0, False)
    store.append_chunk(DEV, sid, 0, blob[:1000])
    with open(store.staging / DEV / f"{sid}.part", "ab") as f:
        f.write(b"torn append the index never counted")
    assert store.upload_state(DEV, sid).offset == 1000
    with pytest.raises(StoreError) as e:
        store.append_chunk(DEV, sid, 500, blob[500:])
    assert e.value.status == 409
    store.append_chunk(DEV, sid, 1000, blob[1000:])
    assert store.open_uploads(DEV) == (1, len(blob))
    assert store.manifest_of_upload(DEV, sid) == line
    r0 = commit(store, recs[0], 20)
    assert r0.verify(PUB) and r0.receipt.seq == 0 and not r0.receipt.gap_before
    assert store.upload_state(DEV, sid).receipt == r0
    r2 = ship(store, recs[2], 30, gap=True)  # seq 1 missing: a gap
    r1 = ship(store, recs[1], 40)  # and filled
    with store.open_object(f"{DEV}/{recs[1][1]}.blob") as f:
        assert f.read() == recs[1][3]
    assert [h.seq for h in store.held_segments(DEV)] == [0, 1, 2]
    assert store.open_uploads(DEV) == (0, 0)
    actions = [e.action for e in check_logs(store)]
    assert actions == [
        "token_issued",
        "enrolled",
        "received",
        "received",
        "gap",
        "received",
        "gap_filled",
    ]
    assert store.record_leaf_index(DEV, sid) == r0.receipt.leaf_index
    assert [r.segment_id for r in store.recent_receipts(DEV)] == [recs[i][1] for i in (1, 2, 0)]
    assert r2.receipt.log_index < r1.receipt.log_index


def test_refusals_reject_and_retire(store):
    enrol(store)
    recs = chain(2)
    ship(store, recs[0], 10)
    other_blob = segment_bytes(300, 9)
    other_line, other_sid, other_fields = record(0, None, other_blob)
    store.begin_upload(DEV, other_sid, other_line, len(other_blob), "0" * 64, 11)
    store.append_chunk(DEV, other_sid, 0, other_blob)
    with pytest.raises(StoreError) as e:  # seq 0 is held: never reused
        commit(store, (other_line, other_sid, other_fields, other_blob), 12)
    assert e.value.status == 409 and e.value.code == "seq_reused"
    store.reject_upload(DEV, other_sid, ["seq reused"], 13)
    assert store.upload_state(DEV, other_sid) is None
    entry = store.retire_record(DEV, recs[0][1], "retention", {"policy": "p"}, 14)
    assert entry.action == "retention_deleted" and entry.detail["seq"] == 0
    assert store.retire_record(DEV, recs[0][1], "retention", {"policy": "p"}, 15) == entry
    assert not store.objects.exists(f"{DEV}/{recs[0][1]}.blob")
    (retired,) = store.retired_records(DEV)
    assert retired.objects_gone and retired.log_index == entry.index
    assert store.upload_state(DEV, recs[0][1]).complete  # the camera does not ship it again
    ship(store, recs[1], 16)  # after a retired record: not a gap
    actions = [e.action for e in check_logs(store)]
    assert actions[-3:] == ["rejected", "retention_deleted", "received"]  # no gap


def test_devices_nonces_reports_and_time(store):
    enrol(store)
    with pytest.raises(StoreError) as e:
        enrol(store)
    assert e.value.status == 409
    assert store.use_nonce(DEV, "n" * 32, 1, 2**40) and not store.use_nonce(DEV, "n" * 32, 2, 9)
    store.record_time_sync(DEV, -(2**40), 5)
    store.record_report(DEV, {"battery_percent": 50, "queued_bytes": 2**41}, 6)
    store.record_report(DEV, {"battery_percent": 40}, 7)
    assert store.device_report(DEV)["battery_percent"] == 40
    dev = store.revoke(DEV, "lost", "technician", 8)
    assert dev.revoked and dev.time_offset_us == -(2**40) and dev.public_key == PUB
    assert store.revoke(DEV, "again", "technician", 9).revoke_reason == "lost"
    assert [d.device_id for d in store.list_devices()] == [DEV]
    assert store.expire_uploads(10, 1) == 0
    check_logs(store)


class FailingObjects(DirectoryObjects):
    """Objects whose writes fail (an unreachable S3 endpoint), and which note the hashes
    they were given."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fail = True
        self.hashes: list[str | None] = []

    def put_file(self, key, src, sha256=None, stored_digest=None, synced=False):
        self.hashes.append(stored_digest or sha256)
        if self.fail:
            raise RuntimeError("endpoint unreachable")
        super().put_file(key, src, sha256, stored_digest, synced)

    def put_bytes(self, key, data, sha256=None):
        self.hashes.append(sha256)
        if self.fail and key.endswith(".manifest"):
            raise RuntimeError("endpoint unreachable")
        super().put_bytes(key, data, sha256)


def test_an_object_store_failure_is_a_503_and_nothing_is_receipted(tmp_path, index):
    objects = FailingObjects(tmp_path / "objects")
    store = DirectoryStore(tmp_path / "dock", KEY, objects, index)
    try:
        enrol(store)
        (rec,) = chain(1)
        with pytest.raises(StoreError) as e:
            ship(store, rec, 10)
        assert e.value.status == 503 and e.value.code == "storage"
        assert store.held_segments(DEV) == [] and store.upload_state(DEV, rec[1]).offset > 0
        assert "received" not in [x.action for x in store.custody_log()]
        objects.fail = False
        receipt = commit(store, rec, 11)
        assert receipt.verify(PUB)
        assert objects.hashes[-2:] == [rec[2].manifest_sha256, rec[2].stored_digest]
        check_logs(store)
    finally:
        store.close()


# --------------------------------------------------------------------------- migrations


def test_a_fresh_index_is_made_once_and_reopens_unchanged(tmp_path, pg_url):
    store = DirectoryStore(tmp_path / "a", KEY, index=pg_url)
    rows = store.db.q("SELECT version, name, applied_at FROM schema_migrations")
    assert [(v, n) for v, n, _ in rows] == [(m.version, m.name) for m in load("postgresql")]
    enrol(store)
    store.close()
    again = DirectoryStore(tmp_path / "b", KEY, index=pg_url)
    try:
        assert again.db.q("SELECT version, name, applied_at FROM schema_migrations") == rows
        assert [e.action for e in check_logs(again)] == ["token_issued", "enrolled"]
    finally:
        again.close()


def test_an_index_a_newer_dock_migrated_is_refused(tmp_path, index):
    store = DirectoryStore(tmp_path / "dock", KEY, index=index)
    with store.db.tx() as db:
        db.execute("INSERT INTO schema_migrations VALUES(?,?,?)", (999, "future", "then"))
    store.close()
    with pytest.raises(StoreError, match="newer than this dock knows"):
        DirectoryStore(tmp_path / "dock", KEY, index=index)


def test_a_store_made_before_migrations_opens_unchanged(tmp_path):
    """An index as the dock made it before schema versions (the same tables, no
    schema_migrations): its data is all there, it is marked as version 1 and brought up to
    date from there (format v3 renamed a column: stored_digest)."""
    root = tmp_path / "dock"
    root.mkdir()
    first, *later = load("sqlite")
    old = sqlite3.connect(root / INDEX_FILE)
    for statement in first.statements:
        old.execute(statement)
    old.execute(
        "INSERT INTO devices(device_id, public_key, key_id, enrolled_at_us) VALUES(?,?,?,?)",
        (DEV, PUB, "kid", 1),
    )
    old.execute(
        "INSERT INTO uploads VALUES(?,?,?,?,?,?,?)", (DEV, "a" * 64, b"line", 10, "0" * 64, 0, 2)
    )
    old.commit()
    old.close()
    store = DirectoryStore(root, KEY)
    try:
        assert store.get_device(DEV).public_key == PUB
        assert store.open_uploads(DEV) == (1, 10)
        versions = store.db.q("SELECT version FROM schema_migrations ORDER BY version")
        assert versions == [(1,)] + [(m.version,) for m in later] and later
        assert store.db.q("SELECT stored_digest FROM segments") == []
        store.log("technician", "note", 3)
        check_logs(store)
    finally:
        store.close()


# --------------------------------------------------------------------------- the database


def test_sql_is_written_once_and_translated_for_postgresql():
    assert translate("SELECT a FROM t WHERE b=? AND c LIKE 'x?%'") == (
        "SELECT a FROM t WHERE b=%s AND c LIKE 'x?%%'"
    )
    assert translate("INSERT OR IGNORE INTO t(a) VALUES(?)") == (
        "INSERT INTO t(a) VALUES(%s) ON CONFLICT DO NOTHING"
    )


def test_a_password_is_never_in_what_the_index_says():
    assert redact_url("postgresql://bwv:s3cret@db:5432/idx?sslmode=require") == (
        "postgresql://bwv:***@db:5432/idx?sslmode=require"
    )
    assert "s3cret" not in redact_url("postgresql://db/idx?user=bwv&password=s3cret")


def test_postgresql_disk_full_is_507_and_other_failures_503():
    errors = pytest.importorskip("psycopg.errors")
    assert storage_failure(errors.DiskFull("could not extend file")).status == 507
    assert storage_failure(errors.OperationalError("server closed the connection")).status == 503


def test_an_index_that_cannot_be_reached_says_so_without_its_password(tmp_path, pg_url):
    parts = urlsplit(pg_url)
    url = urlunsplit(parts._replace(netloc=f"bwv:s3cret@{parts.hostname}:1"))
    with pytest.raises(StoreError) as e:
        DirectoryStore(tmp_path / "dock", KEY, index=url)
    assert e.value.status == 503 and "cannot connect to the index" in str(e.value)
    assert "s3cret" not in str(e.value) and "bwv:***@" in str(e.value)


def test_a_dropped_connection_is_a_503_then_made_again(tmp_path, pg_url):
    psycopg = pytest.importorskip("psycopg")
    store = DirectoryStore(tmp_path / "dock", KEY, index=pg_url)
    recs = chain(2)
    try:
        enrol(store)
        ship(store, recs[0], 4)  # a device lock taken: its connection is kept for the next
        with psycopg.connect(pg_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname=current_database() AND application_name='bwv-dock'"
            ).fetchall()
        assert killed
        with pytest.raises(StoreError) as e:
            store.log("technician", "note", 5)
        assert e.value.status == 503 and e.value.code == "storage"
        store.log("technician", "note", 6)  # connected again
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname=current_database() AND application_name='bwv-dock'"
            )
        with pytest.raises(StoreError):
            store.list_devices()
        assert [d.device_id for d in store.list_devices()] == [DEV]
        assert ship(store, recs[1], 7).verify(PUB)  # the kept lock connection was lost too
        assert [e.action for e in check_logs(store)][-2:] == ["note", "received"]
    finally:
        store.close()


def test_session_locks_are_exclusive_and_die_with_their_holder(tmp_path, index):
    a = open_database(index or tmp_path / INDEX_FILE)
    b = open_database(index or tmp_path / INDEX_FILE)
    try:
        held = a.try_session_lock("log")
        assert held is not None and held.held()
        assert b.try_session_lock("log") is None
        assert a.try_session_lock("other") is not None
        held.release()
        again = b.try_session_lock("log")
        assert again is not None
        if index is not None:  # the holder's session ends (its dock died): the lock is free
            psycopg = pytest.importorskip("psycopg")
            with psycopg.connect(index, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype='advisory' AND granted AND database="
                    "(SELECT oid FROM pg_database WHERE datname=current_database())"
                )
            assert not again.held()
            assert a.try_session_lock("log") is not None
    finally:
        a.close()
        b.close()
