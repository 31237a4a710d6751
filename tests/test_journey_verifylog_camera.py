"""What a camera's holder can do to its outbox, seen through the dock's witnessed log:

- a whole recording deleted from the outbox before it shipped (its records, segments and
  trail lines) leaves no gap in the camera's files when it is the newest one; once any later
  record ships, the log shows the seqs that never arrived (``withheld``);
- a camera rolled back (an SD-card snapshot restored, then a new recording signed with the
  same sequence numbers) holds a second history of seqs the log has: ``equivocation``.

Over a real dock (TLS, its log); the witness's cosignature is made with a witness key."""

from __future__ import annotations

import hashlib
import shutil

from nacl.signing import SigningKey

from crypto.verify import read_outbox, verify
from crypto.verify.log import LogTrust
from dock.checkpoints import latest_checkpoint
from dock.log_audit import audit_store
from dock.testing import DockHarness, OutboxDevice, segment_bytes
from tests.test_journey_log_dock import ship_all
from tlog.cosignature import CosignatureSigner
from tlog.note import add_signatures, split_note

WITNESS = CosignatureSigner("watchdog.example", SigningKey(hashlib.sha256(b"wd").digest()))
SEED = hashlib.sha256(b"cam-seed").digest()


def _record(dev: OutboxDevice, rec: str) -> None:
    dev.add_segment(segment_bytes(2000 + len(rec), len(rec)), recording_id=rec)
    dev.end_recording(rec)


def _witnessed(h: DockHarness) -> LogTrust:
    cp = latest_checkpoint(h.store_dir)
    assert cp is not None
    text, _ = split_note(cp.note)
    note = add_signatures(cp.note, [WITNESS.cosign(text, 1_800_000_000)])
    return LogTrust((WITNESS.vkey,), note, bytes(h.public_key))


def _delete_from_outbox(dev: OutboxDevice, rec: str) -> None:
    for p in sorted((dev.root / "chain").iterdir()):
        if f'"recording_id":"{rec}"'.encode() in p.read_bytes():
            p.unlink()
    for p in (dev.root / "segments").glob(f"{rec}_*"):
        p.unlink()


def test_the_newest_recording_deleted_from_the_outbox_leaves_no_gap_on_the_camera(tmp_path):
    """Why the log is needed: the camera's own files verify without it."""
    dev = OutboxDevice(tmp_path / "cam", "cam-del", seed=SEED)
    _record(dev, "recA")
    _record(dev, "recB")
    _delete_from_outbox(dev, "recB")
    files = read_outbox(dev.root)
    report = verify(files, dev.public_key, require_trail=False)  # stand-in segments aside
    assert not [f for f in report.findings if f.kind in ("gap", "withheld", "chain_break")]


def test_a_recording_deleted_from_the_outbox_before_it_shipped_is_withheld(tmp_path):
    h = DockHarness(tmp_path / "dock")
    try:
        dev = OutboxDevice(tmp_path / "cam", "cam-del", seed=SEED)
        dev.creds = h.enroll(dev)
        _record(dev, "recA")  # seqs 0, 1
        _record(dev, "recB")  # seqs 2, 3: deleted before the dock sees them
        _delete_from_outbox(dev, "recB")
        _record(dev, "recC")  # seqs 4, 5: shipped
        ship_all(h, dev)
        trust = _witnessed(h)
    finally:
        h.close()
    audit = audit_store(tmp_path / "dock", trust)
    withheld = [f for f in audit.findings if f.kind == "withheld"]
    assert [f.seq for f in withheld] == [2], audit.findings
    assert "2..3" in withheld[0].detail and "cam-del" in withheld[0].detail


def test_a_rolled_back_camera_recording_the_same_seqs_again_is_equivocation(tmp_path):
    h = DockHarness(tmp_path / "dock")
    try:
        dev = OutboxDevice(tmp_path / "cam", "cam-rb", seed=SEED)
        dev.creds = h.enroll(dev)
        snapshot = tmp_path / "snapshot"  # the SD card before recA
        shutil.copytree(dev.root, snapshot)
        _record(dev, "recA")
        ship_all(h, dev)  # recA is at the dock, in the witnessed log
        trust = _witnessed(h)
        shutil.rmtree(dev.root)
        (tmp_path / "cam-rb.chain-state").unlink()  # the card and the chain state restored
        shutil.copytree(snapshot, dev.root)
        again = OutboxDevice(tmp_path / "cam", "cam-rb", seed=SEED)
        _record(again, "recB")  # signed as seqs 0 and 1 again
        assert [r.seq for r in again.records] == [0, 1]
    finally:
        h.close()
    outbox = read_outbox(again.root)
    # the camera's files alone show one history (its stand-in segments aside), no gap
    alone = verify(outbox, again.public_key, require_trail=False).findings
    assert not [f for f in alone if f.kind in ("equivocation", "gap", "withheld")]
    audit = audit_store(tmp_path / "dock", trust, outbox)
    assert [(f.kind, f.seq) for f in audit.findings] == [("equivocation", 0), ("equivocation", 1)]
    assert "recA" in audit.findings[0].detail
