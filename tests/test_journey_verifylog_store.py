"""A dock store checked against its witnessed log (``bwv verify STORE --witness-key W
--checkpoint C``): the dock operator who deletes a shipped recording and its custody-log
entries, and re-signs the custody log with ``dock.key``, is found out (``withheld``), whether
the log's leaves are left as they are or rewritten too.

The dock is a real one (over TLS, its log as dock/translog.py keeps it); the witness's
cosignature is made here with a witness key (what ``bwv witness serve`` answers with)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from bwv.cli import main
from dock.checkpoints import latest_checkpoint
from dock.custody import entry_hash, entry_of_row, verify_custody_log
from dock.keys import DOCK_KEY_FILE, load_or_create_signing_key
from dock.log_audit import audit_store
from dock.protocol import b64e
from dock.testing import DockHarness, OutboxDevice, segment_bytes
from tests.test_journey_log_dock import ship_all
from tlog.cosignature import CosignatureSigner
from tlog.note import add_signatures, split_note

WITNESS = CosignatureSigner("watchdog.example", SigningKey(hashlib.sha256(b"wd").digest()))


@pytest.fixture
def shipped(tmp_path):
    """A dock that received two recordings of one camera; the witness's latest checkpoint."""
    h = DockHarness(tmp_path / "dock")
    try:
        dev = OutboxDevice(tmp_path / "cam", "cam-op")
        dev.creds = h.enroll(dev)
        for rec in ("recA", "recB"):
            for i in range(2):
                dev.add_segment(segment_bytes(3000 + i, i), recording_id=rec)
            dev.end_recording(rec)
        ship_all(h, dev)
        cp = latest_checkpoint(h.store_dir)
        assert cp is not None and cp.size > 0
        dock_pub = h.public_key
    finally:
        h.close()
    text, _ = split_note(cp.note)
    witnessed = add_signatures(cp.note, [WITNESS.cosign(text, 1_800_000_000)])
    (tmp_path / "witness.vkey").write_text(WITNESS.vkey + "\n")
    (tmp_path / "checkpoint").write_bytes(witnessed)
    return tmp_path / "dock", tmp_path, bytes(dock_pub)


def _trust(tmp: Path, dock_pub: bytes):
    from crypto.verify.log import LogTrust

    return LogTrust((WITNESS.vkey,), (tmp / "checkpoint").read_bytes(), dock_pub)


def _delete_recording(store: Path, recording_id: str, rewrite_log: bool) -> None:
    """What a dock operator with the store and dock.key can do: remove the recording's
    rows, objects and custody entries, re-sign the custody log (and, maybe, rebuild the
    log's leaves without them)."""
    key = load_or_create_signing_key(store / DOCK_KEY_FILE)
    db = sqlite3.connect(store / "index.sqlite3")
    ids = [
        r[0]
        for r in db.execute("SELECT segment_id FROM segments WHERE recording_id=?", (recording_id,))
    ]
    dev = db.execute("SELECT device_id FROM segments LIMIT 1").fetchone()[0]
    for sid in ids:
        db.execute("DELETE FROM segments WHERE segment_id=?", (sid,))
        db.execute("DELETE FROM custody_log WHERE segment_id=?", (sid,))
        for ext in ("blob", "manifest"):
            (store / "objects" / dev / f"{sid}.{ext}").unlink(missing_ok=True)
    rows = db.execute("SELECT * FROM custody_log ORDER BY idx").fetchall()
    db.execute("DELETE FROM custody_log")
    prev = "0" * 64
    from dock.custody import COLUMNS

    for n, row in enumerate(rows, 1):
        e = replace(entry_of_row(row), index=n, prev_hash=prev)
        h = entry_hash(e)
        sig = b64e(key.sign(bytes.fromhex(h)).signature)
        db.execute(
            f"INSERT INTO custody_log({COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
            (
                n,
                e.at_us,
                e.actor,
                e.action,
                e.device_id,
                e.segment_id,
                e.sha256,
                json.dumps(e.detail, sort_keys=True),
                prev,
                h,
                sig,
            ),
        )
        prev = h
    if rewrite_log:
        leaves = db.execute("SELECT kind, ref, data, leaf_hash FROM log_leaves ORDER BY idx")
        keep = [x for x in leaves.fetchall() if not any(sid in x[1] for sid in ids)]
        db.execute("DELETE FROM log_leaves")
        for i, x in enumerate(keep):
            db.execute("INSERT INTO log_leaves VALUES(?,?,?,?,?)", (i, *x))
    db.commit()
    db.close()


def _custody_still_verifies(store: Path, dock_pub: bytes) -> bool:
    db = sqlite3.connect(store / "index.sqlite3")
    from dock.custody import COLUMNS

    entries = [entry_of_row(r) for r in db.execute(f"SELECT {COLUMNS} FROM custody_log")]
    db.close()
    return verify_custody_log(entries, dock_pub) == []


def test_the_untouched_store_verifies_against_the_witness(shipped):
    store, tmp, dock_pub = shipped
    audit = audit_store(store, _trust(tmp, dock_pub))
    assert audit.ok, audit.findings
    assert set(audit.recordings) == {"recA", "recB"}


def test_deleting_a_shipped_recording_and_its_custody_entries_is_withheld(shipped):
    store, tmp, dock_pub = shipped
    _delete_recording(store, "recB", rewrite_log=False)
    assert _custody_still_verifies(store, dock_pub)  # the dock's own signature says nothing
    audit = audit_store(store, _trust(tmp, dock_pub))
    kinds = {f.kind for f in audit.findings}
    assert kinds == {"withheld"}
    records = [f for f in audit.findings if f.recording_id == "recB"]
    assert [f.seq for f in records] == [3, 4, 5]
    assert all("cam-op" in f.detail and "log leaf" in f.detail for f in records)
    assert audit.recordings["recB"]["status"] == "withheld"
    assert audit.recordings["recA"]["status"] == "present"


def test_rewriting_the_log_without_the_recording_is_withheld_too(shipped):
    store, tmp, dock_pub = shipped
    _delete_recording(store, "recB", rewrite_log=True)
    audit = audit_store(store, _trust(tmp, dock_pub))
    assert [f.kind for f in audit.findings] == ["withheld"]
    assert "cut back" in audit.findings[0].detail or "rewritten" in audit.findings[0].detail


def test_bwv_verify_on_the_store_says_withheld_and_exits_1(shipped):
    store, tmp, dock_pub = shipped
    args = [
        "verify",
        str(store),
        "--witness-key",
        str(tmp / "witness.vkey"),
        "--checkpoint",
        str(tmp / "checkpoint"),
    ]
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert "recording recA" in ok.output and "VERIFIED" in ok.output
    _delete_recording(store, "recB", rewrite_log=False)
    got = CliRunner().invoke(main, args)
    assert got.exit_code == 1, got.output
    assert "withheld: device cam-op seq 3" in got.output
    assert "NOT VERIFIED" in got.output


def test_a_checkpoint_the_witness_did_not_cosign_is_unwitnessed(shipped):
    store, tmp, dock_pub = shipped
    from crypto.verify.log import LogTrust

    own = (store / "log" / "checkpoint").read_bytes()  # the dock's, not cosigned
    audit = audit_store(store, LogTrust((WITNESS.vkey,), own, dock_pub))
    assert [f.kind for f in audit.findings] == ["unwitnessed"] and not audit.ok


def test_dock_status_verify_checks_the_store_against_the_witness(shipped):
    store, tmp, dock_pub = shipped
    args = [
        "dock", "status", "--store", str(store), "--verify",
        "--witness-key", str(tmp / "witness.vkey"), "--checkpoint", str(tmp / "checkpoint"),
    ]  # fmt: skip
    ok = CliRunner().invoke(main, args)  # its stand-in segments fail re-verification
    assert "cosigned by watchdog.example" in ok.output
    assert "log: every leaf the witness saw is held" in ok.output
    assert json.loads(CliRunner().invoke(main, [*args, "--json"]).output)["witnessed"]["ok"] is True
    _delete_recording(store, "recB", rewrite_log=False)
    got = CliRunner().invoke(main, args)
    assert got.exit_code == 1, got.output
    assert "withheld: device cam-op seq 3" in got.output and "log: NOT VERIFIED" in got.output
    js = CliRunner().invoke(main, [*args, "--json"])
    assert js.exit_code == 1 and json.loads(js.output)["witnessed"]["ok"] is False
