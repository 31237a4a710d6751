"""What the embedded index commits without waiting for the disk, and why nothing is lost.

A request's nonce, a new upload's row and a device's report are committed into SQLite's log
without an fsync (dock/store_sqlite.py, dock/store_uploads.py, dock/store_reports.py): a dock
process that crashes keeps them, a machine that loses power may not. No receipt names an
upload before its completion's commit, which waits for the disk and makes the commits before
it durable with it; a request with a lasting effect makes its nonce durable so. Every other
commit, receipts above all, waits."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from capture.clock import VirtualClock
from dock.client import DockClient
from dock.server import wall_clock_us
from dock.shipper import ChainOutbox, Shipper
from dock.sqldb import SqliteDatabase
from dock.store import StoreError
from dock.testing import DockHarness, OutboxDevice, segment_bytes

FULL, NORMAL = 2, 1  # PRAGMA synchronous


def _synchronous(db: SqliteDatabase) -> int:
    return int(db.conn.execute("PRAGMA synchronous").fetchone()[0])


def test_only_the_commit_asked_not_to_wait_skips_the_disk(tmp_path):
    db = SqliteDatabase(tmp_path / "index.sqlite3")
    try:
        db.conn.execute("CREATE TABLE t(x)")
        with db.tx(durable=False) as conn:
            assert _synchronous(db) == NORMAL
            conn.execute("INSERT INTO t VALUES(1)")
        assert _synchronous(db) == FULL  # every other commit: fsync'd
        with db.tx() as conn:
            assert _synchronous(db) == FULL
            conn.execute("INSERT INTO t VALUES(2)")
        assert db.q("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
    finally:
        db.close()


def test_a_failed_commit_that_skipped_the_disk_leaves_the_next_ones_durable(tmp_path):
    db = SqliteDatabase(tmp_path / "index.sqlite3")
    try:
        db.conn.execute("CREATE TABLE t(x UNIQUE)")
        with db.tx() as conn:
            conn.execute("INSERT INTO t VALUES(1)")
        with pytest.raises(StoreError), db.tx(durable=False) as conn:
            conn.execute("INSERT INTO t VALUES(2)")
            conn.execute("INSERT INTO t VALUES(1)")  # a constraint fails: rolled back
        assert _synchronous(db) == FULL
        assert db.q("SELECT x FROM t") == [(1,)]
        with pytest.raises(RuntimeError), db.tx(durable=False):
            raise RuntimeError("the caller's own failure")
        assert _synchronous(db) == FULL and not db.conn.in_transaction
    finally:
        db.close()


def test_what_skips_the_disk_is_made_durable_by_the_commit_of_the_effect_after_it(tmp_path):
    """Over one segment's shipping (time sync, report, segment): the nonces, the upload's
    row and the device's report are the commits that do not wait; each request with a
    lasting effect waits for the disk after its nonce (the time sync's record, the
    completion's receipt), and the last commit, the receipt's, waits."""
    harness = DockHarness(tmp_path / "dock")
    try:
        dev = OutboxDevice(tmp_path / "outbox", "cam-durable")
        creds = harness.enroll(dev)
        dev.add_segment(segment_bytes(50_000, seed=5))
        db = harness.dock.store.db
        commits: list[tuple[bool, str]] = []
        real = db.tx

        @contextmanager
        def tx(durable: bool = True):
            with real(durable) as conn:
                first: list[str] = []

                class Noted:
                    def execute(self, sql, *args):
                        first.append(sql)
                        return conn.execute(sql, *args)

                yield Noted()
            sql = next((q for q in first if q.startswith(("INSERT", "UPDATE"))), "")
            commits.append((durable, sql.split("(")[0].strip()))

        db.tx = tx
        with DockClient(harness.url, creds, wall_clock=wall_clock_us, timeout=10) as client:
            shipper = Shipper(ChainOutbox(dev.root), client, VirtualClock())
            assert shipper.step().action == "shipped"
        skipped = {sql for durable, sql in commits if not durable}
        assert skipped == {
            "INSERT OR IGNORE INTO nonces",
            "INSERT INTO device_reports",
            "INSERT INTO uploads",
        }
        nonces = [i for i, (_, sql) in enumerate(commits) if "nonces" in sql]
        assert len(nonces) == 3  # time sync, report, segment
        waits = [i for i, (durable, _) in enumerate(commits) if durable]
        assert any(nonces[0] < i < nonces[1] for i in waits)  # the time sync's record
        assert waits[-1] == len(commits) - 1 > nonces[2]  # the receipt's, last
        row = commits.index((False, "INSERT INTO uploads"))
        assert nonces[2] < row < waits[-1]
    finally:
        harness.close()
