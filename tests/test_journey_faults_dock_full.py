"""Issue 8, point 23: the dock's disk fills.

Every storage failure at the dock answers the designed, signed 507 (never an unsigned 500
with a traceback); the camera says "dock full" (not a key problem), keeps everything and
ships it all once space is back. The dock's storage is filled at its storage layer (SQLite's
own page limit gives a real "database or disk is full"; segment writes fail with ENOSPC),
and, where this runs as root, on a real, small tmpfs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

import dock.store as store_mod
import dock.store_uploads as uploads_mod
from capture.clock import VirtualClock
from dock.client import DockClient
from dock.protocol import H_DOCK_SIGNATURE, H_NONCE, verify_response
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, segment_bytes
from dock.tls import pinned_to

FAST = ShipperConfig(chunk_bytes=16 << 10, jitter=0.0, backoff_initial_s=1.0, backoff_max_s=30.0)


class AnswerLog(httpx.HTTPTransport):
    """The device's transport, noting every answer: status and whether the dock signed it."""

    def __init__(self, dock_public_key: bytes) -> None:
        super().__init__(verify=pinned_to(dock_public_key))  # the dock's TLS, its key pinned
        self.dock_public_key = dock_public_key
        self.answers: list[tuple[str, int, bool]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = super().handle_request(request)
        body = resp.read()
        signed = verify_response(
            self.dock_public_key,
            resp.status_code,
            request.headers.get(H_NONCE, ""),
            body,
            resp.headers.get(H_DOCK_SIGNATURE),
        )
        self.answers.append((f"{request.method} {request.url.path}", resp.status_code, signed))
        return resp


class FullDisk:
    """``os`` as dock/store_uploads.py sees it, on a full disk: fsync fails with ENOSPC."""

    def __init__(self) -> None:
        self._real = os

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def fsync(self, fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _wall() -> int:
    import time

    return time.time_ns() // 1000


def _device(harness: DockHarness, root: Path, name: str, segments: int, size: int):
    dev = OutboxDevice(root / "outbox", name)
    dev.creds = harness.enroll(dev)
    for i in range(segments):
        dev.add_segment(segment_bytes(size + i * 101, i))
    dev.end_recording()
    return dev


def _outbox_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _run_until_idle(shipper: Shipper, clock: VirtualClock, max_steps: int = 200) -> list:
    reports = []
    for _ in range(max_steps):
        r = shipper.step()
        reports.append(r)
        if r.action == "idle":
            return reports
        if r.retry_at_us is not None:
            clock.set(max(clock.now_us(), r.retry_at_us))
    raise AssertionError(f"shipper did not finish: {reports[-5:]}")


class FullIndex:
    """The dock's SQLite connection on a full disk, failing where the campaign saw it: at
    COMMIT, with SQLite's own error (the transaction is left open, as SQLite may leave it)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __getattr__(self, name: str):
        return getattr(self.db, name)

    def execute(self, sql: str, *args):
        if sql.strip().upper().startswith("COMMIT"):
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = 13  # SQLITE_FULL
            exc.sqlite_errorname = "SQLITE_FULL"
            raise exc
        return self.db.execute(sql, *args)


def _fill_index(store) -> None:
    store._db = FullIndex(store._db)


def _free_index(store) -> None:
    if isinstance(store._db, FullIndex):
        store._db = store._db.db


def _fill_index_pages(store) -> None:
    """SQLite's own limit: no page beyond those the index has now (a real SQLITE_FULL)."""
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages}")


@pytest.mark.parametrize("full", ["index", "objects", "both"])
def test_full_dock_answers_signed_507_and_the_camera_says_dock_full(
    tmp_path, monkeypatch, caplog, full
):
    harness = DockHarness(tmp_path / "dock")
    try:
        dev = _device(harness, tmp_path, f"cam-full-{full}", segments=3, size=40_000)
        before = _outbox_bytes(dev.root)
        answers = AnswerLog(harness.public_key)
        client = DockClient(harness.url, dev.creds, wall_clock=_wall, transport=answers)
        clock = VirtualClock()
        shipper = Shipper(ChainOutbox(dev.root), client, clock, config=FAST)
        store = harness.dock.store
        if full in ("index", "both"):
            _fill_index(store)
        if full in ("objects", "both"):
            monkeypatch.setattr(uploads_mod, "os", FullDisk())

        caplog.set_level(logging.WARNING, logger="bwv")
        reports = []
        for _ in range(4):  # the camera tries, backs off, tries again: the dock is still full
            r = shipper.step()
            reports.append(r)
            assert r.action == "failed", r
            clock.set(r.retry_at_us)

        assert answers.answers, "the device asked the dock"
        refused = [a for a in answers.answers if a[1] >= 400]
        assert refused and all(a[1] == 507 and a[2] for a in refused), answers.answers
        assert all(a[2] for a in answers.answers), "every answer carries the dock's signature"
        assert all(r.detail.startswith("dock full") for r in reports), reports
        assert shipper.state.last_error.startswith("dock full")
        said = [rec.getMessage() for rec in caplog.records if rec.name.startswith("bwv.shipper")]
        assert said and all("dock full" in m for m in said), said
        assert not any("signed" in m or "key" in m for m in said), said
        assert _outbox_bytes(dev.root) == before, "nothing leaves the camera without a receipt"
        assert not store.held_segments(dev.device_id)

        # space comes back: everything ships, exactly once
        _free_index(store)
        monkeypatch.setattr(uploads_mod, "os", os)
        _run_until_idle(shipper, clock)
        held = store.held_segments(dev.device_id)
        assert [h.segment_id for h in held] == [r.sha256 for r in dev.records]
        assert not list((dev.root / "segments").glob("*.bwvseg"))
        assert all(a[2] for a in answers.answers)
        client.close()
    finally:
        harness.close()


def test_a_failed_index_write_leaves_no_transaction_open(tmp_path):
    """SQLite rolls a full-disk failure back by itself: the store must not then fail the
    request with "cannot rollback" (an unsigned 500), nor the next one."""
    harness = DockHarness(tmp_path / "dock")
    try:
        store = harness.dock.store
        _fill_index_pages(store)
        with pytest.raises(store_mod.StoreError) as err:
            for i in range(200):
                store.log("technician", "note", i, detail={"pad": "x" * 2000})
        assert err.value.status == 507 and err.value.code == "storage"
        store._db.execute("PRAGMA max_page_count=1073741823")
        store.log("technician", "note", 1, detail={"after": "space came back"})
        assert not store._db.in_transaction
    finally:
        harness.close()


@contextlib.contextmanager
def _small_tmpfs(path: Path, size: str):
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path) -> Path:
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_really_full_filesystem_answers_only_signed_507(tmp_path, caplog):
    with _small_tmpfs(tmp_path / "small", "6m") as small:
        harness = DockHarness(small / "dock")
        try:
            dev = _device(harness, tmp_path, "cam-tmpfs", segments=4, size=300_000)
            before = _outbox_bytes(dev.root)
            answers = AnswerLog(harness.public_key)
            client = DockClient(harness.url, dev.creds, wall_clock=_wall, transport=answers)
            clock = VirtualClock()
            shipper = Shipper(ChainOutbox(dev.root), client, clock, config=FAST)
            filler = _fill(small)
            caplog.set_level(logging.WARNING, logger="bwv")
            for _ in range(4):
                r = shipper.step()
                assert r.action == "failed" and r.detail.startswith("dock full"), r
                clock.set(r.retry_at_us)
            assert all(a[2] for a in answers.answers), answers.answers
            assert {a[1] for a in answers.answers if a[1] >= 400} == {507}, answers.answers
            assert _outbox_bytes(dev.root) == before

            filler.unlink()
            _run_until_idle(shipper, clock)
            held = harness.dock.store.held_segments(dev.device_id)
            assert [h.segment_id for h in held] == [r.sha256 for r in dev.records]
            assert all(a[2] for a in answers.answers)
            assert not any(a[1] >= 500 and a[1] != 507 for a in answers.answers)
            client.close()
        finally:
            harness.close()
