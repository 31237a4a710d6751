"""What the embedded index commits without waiting for the disk, and why nothing is lost.

A new upload's row is committed into SQLite's log without an fsync (dock/store_uploads.py):
a dock process that crashes keeps it, a machine that loses power may not, and no receipt
names an upload before its completion's commit, which waits for the disk and makes the
commits before it durable with it. Every other commit, receipts above all, waits."""

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


def test_only_an_uploads_creation_and_a_report_skip_the_disk_and_the_receipt_waits(tmp_path):
    """Over one segment's shipping: the upload's row and the device's report are the
    commits that do not wait; the nonces' and the completion's (the receipt's) do, the
    last after the row's."""
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
            commits.append((durable, first[0].split("(")[0].strip() if first else ""))

        db.tx = tx
        with DockClient(harness.url, creds, wall_clock=wall_clock_us, timeout=10) as client:
            shipper = Shipper(ChainOutbox(dev.root), client, VirtualClock())
            assert shipper.step().action == "shipped"
        skipped = sorted(sql for durable, sql in commits if not durable)
        assert skipped == ["INSERT INTO device_reports", "INSERT INTO uploads"]
        row = commits.index((False, "INSERT INTO uploads"))
        assert commits[-1][0] and row < len(commits) - 1  # the receipt's, after it, waits
        assert sum(1 for durable, sql in commits if durable and "nonces" in sql) >= 3
    finally:
        harness.close()
