"""The verifier and the witnessed log (crypto/verify/log.py): an exhibit's records must be
in a checkpoint the witness cosigned; a dock's log must hold, and its store keep, what the
witness saw; a rolled-back camera and a recording deleted from a camera show.

The dock's log is built here as the dock builds it (docs/evidence-format.md: leaves
``bwv:log-record:v2\\0`` + the record's bytes, a checkpoint signed by the dock's key and
cosigned by the witness), with ``tlog``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from nacl.signing import SigningKey

from crypto.identity import key_id_of
from crypto.testing import agency_key, device_identity, make_sink, write_recording
from crypto.verify import read_outbox
from crypto.verify.exhibit import verify_exhibit
from crypto.verify.log import (
    CHECKPOINT,
    PROOFS,
    RECORD_LEAF,
    LogTrust,
)
from crypto.verify.log_store import (
    Holdings,
    audit_leaves,
    seq_gaps,
)
from tlog.checkpoint import Checkpoint
from tlog.cosignature import CosignatureSigner
from tlog.note import NoteSigner, add_signatures, sign_note
from tlog.store import LogStore

AGENCY = agency_key()
DEV = device_identity("cam-log")
DOCK = SigningKey(hashlib.sha256(b"dock").digest())
ORIGIN = f"bwv-dock/{key_id_of(bytes(DOCK.verify_key))}"
WITNESS = CosignatureSigner("witness.example", SigningKey(hashlib.sha256(b"w").digest()))
OTHER = CosignatureSigner("other.example", SigningKey(hashlib.sha256(b"o").digest()))


def _outbox(root: Path, *recordings: str) -> dict[str, bytes]:
    sink = make_sink(root, DEV, AGENCY)
    for rec in recordings:
        write_recording(sink, rec, segments=1, fragments=2, size=80)
    sink.close()
    return read_outbox(root / "outbox")


def _chain(files: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return sorted((n, d) for n, d in files.items() if n.startswith("chain/"))


class DockLog:
    """A dock's log: leaves, checkpoints signed by the dock and cosigned by a witness."""

    def __init__(self, path: Path) -> None:
        self.store = LogStore(path)

    def add(self, line: bytes) -> int:
        return self.store.append(RECORD_LEAF + line)

    def checkpoint(self, cosigner: CosignatureSigner = WITNESS) -> bytes:
        body = Checkpoint(ORIGIN, self.store.size, self.store.root(), ()).body()
        note = sign_note(body, [NoteSigner(ORIGIN, DOCK)])
        return add_signatures(note, [cosigner.cosign(body, 1_700_000_000)])

    def proofs(self, lines: list[bytes], size: int | None = None) -> bytes:
        size = self.store.size if size is None else size
        index = {self.store.leaf_hash(i): i for i in range(size)}
        out = []
        for line in lines:
            from tlog.merkle import leaf_hash

            i = index[leaf_hash(RECORD_LEAF + line)]
            inc = [base64.b64encode(h).decode() for h in self.store.inclusion_proof(i, size)]
            out.append(
                {
                    "record_sha256": hashlib.sha256(line).hexdigest(),
                    "leaf_index": i,
                    "tree_size": size,
                    "inclusion": inc,
                    # the first checkpoint including it: here, the one checkpoint issued
                    "first": {"tree_size": size, "inclusion": inc},
                }
            )
        return b"".join(json.dumps(p).encode() + b"\n" for p in out)


def _exhibit(files: dict[str, bytes], recording: str, log: DockLog) -> dict[str, bytes]:
    """A recording's evidence in the exhibit layout, with the log papers."""
    ex = {}
    for n, d in files.items():
        if recording.encode() in d and n.startswith("chain/"):
            ex["manifests/" + n.split("/", 1)[1]] = d
        elif recording in n:
            ex[n] = d
    ex[CHECKPOINT] = log.checkpoint()
    ex[f"log/checkpoints/{log.store.size}"] = ex[CHECKPOINT]
    ex[PROOFS] = log.proofs([d for n, d in ex.items() if n.startswith("manifests/")])
    return ex


TRUST = LogTrust((WITNESS.vkey,), None, bytes(DOCK.verify_key))


def _kinds(report) -> list[str]:
    return [f.kind for f in report.findings]


def test_an_exhibit_whose_records_are_in_the_witnessed_log_verifies(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        log.add(line)
    ex = _exhibit(files, "recA", log)
    report = verify_exhibit(ex, DEV.public_key, trust=TRUST)
    assert report.ok, report.findings
    assert report.log is not None and set(report.log["included"]) == {"0", "1"}
    assert report.log["checkpoints"][0]["witnesses"] == ["witness.example"]


def test_without_a_witness_key_the_log_papers_are_accepted_unchecked(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        log.add(line)
    report = verify_exhibit(_exhibit(files, "recA", log), DEV.public_key)
    assert report.ok and report.log is None


def test_a_checkpoint_not_cosigned_by_the_witness_given_is_unwitnessed(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        log.add(line)
    ex = _exhibit(files, "recA", log)
    ex[CHECKPOINT] = log.checkpoint(cosigner=OTHER)  # the dock's friend, not the witness
    report = verify_exhibit(ex, DEV.public_key, trust=TRUST)
    assert not report.ok and _kinds(report) == ["unwitnessed"]


def test_a_record_the_log_does_not_show_is_withheld(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    chain = _chain(files)
    log.add(chain[0][1])  # the end record never reached the log
    ex = _exhibit({n: d for n, d in files.items() if n != chain[1][0]}, "recA", log)
    ex["manifests/" + chain[1][0].split("/", 1)[1]] = chain[1][1]
    report = verify_exhibit(ex, DEV.public_key, trust=TRUST)
    assert "withheld" in _kinds(report)
    assert any(f.kind == "withheld" and f.seq == 1 for f in report.findings)


def test_a_broken_inclusion_proof_is_altered(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        log.add(line)
    log.add(b"another leaf")  # a tree of 3: proofs have a sibling to break
    ex = _exhibit(files, "recA", log)
    p = [json.loads(x) for x in ex[PROOFS].splitlines()]
    p[0]["inclusion"][0] = base64.b64encode(b"\x00" * 32).decode()
    ex[PROOFS] = b"".join(json.dumps(x).encode() + b"\n" for x in p)
    report = verify_exhibit(ex, DEV.public_key, trust=TRUST)
    assert [(f.kind, f.seq) for f in report.findings] == [("altered", 0)]


def test_two_checkpoints_of_one_size_with_different_roots_are_equivocation(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        log.add(line)
    log.add(b"leaf seen by the witness")
    fork = DockLog(tmp_path / "fork")  # what the dock shows the court
    for _, line in _chain(files):
        fork.add(line)
    fork.add(b"another third leaf")
    ex = _exhibit(files, "recA", fork)
    trust = LogTrust((WITNESS.vkey,), log.checkpoint(), bytes(DOCK.verify_key))
    report = verify_exhibit(ex, DEV.public_key, trust=trust)
    assert "equivocation" in _kinds(report)


def test_a_checkpoint_not_signed_by_the_dock_key_given_is_altered(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        log.add(line)
    ex = _exhibit(files, "recA", log)
    other_dock = bytes(SigningKey(hashlib.sha256(b"x").digest()).verify_key)
    report = verify_exhibit(ex, DEV.public_key, trust=LogTrust((WITNESS.vkey,), None, other_dock))
    assert _kinds(report) == ["altered"] and "dock key" in report.findings[0].detail


# -- the dock's whole log ----------------------------------------------------------------------
def _leaves(log: DockLog) -> list[bytes]:
    return [log.store.leaf_data(i) for i in range(log.store.size)]


def test_a_logged_record_the_store_no_longer_holds_is_withheld_with_device_seq_and_leaf(
    tmp_path,
):
    files = _outbox(tmp_path / "cam", "recA", "recB")
    log = DockLog(tmp_path / "log")
    chain = _chain(files)
    for _, line in chain:
        log.add(line)
    held = {hashlib.sha256(d).hexdigest() for n, d in chain if b"recB" not in d}
    found = audit_leaves(_leaves(log), Holdings(held, set()), {DEV.device_id: DEV.public_key})
    assert [(f.kind, f.seq, f.recording_id) for f in found] == [
        ("withheld", 2, "recB"),
        ("withheld", 3, "recB"),
    ]
    assert "log leaf 2" in found[0].detail and DEV.device_id in found[0].detail


def test_a_record_deleted_with_a_logged_retention_event_is_explained(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    chain = _chain(files)
    for _, line in chain:
        log.add(line)
    entry = {
        "index": 9,
        "action": "retention_deleted",
        "device_id": DEV.device_id,
        "entry_hash": "e" * 64,
        "detail": {"record_sha256": hashlib.sha256(chain[1][1]).hexdigest()},
    }
    log.store.append(b"bwv:log-custody:v2\0" + json.dumps(entry).encode())
    held = Holdings({hashlib.sha256(chain[0][1]).hexdigest()}, {"e" * 64})
    assert audit_leaves(_leaves(log), held) == []


def test_a_rolled_back_camera_signing_its_seqs_again_is_equivocation(tmp_path):
    """Restore the camera's SD card to before recA, record recB: the same seqs, signed
    again. The dock logged both histories; the witness saw them."""
    first = _outbox(tmp_path / "before", "recA")
    again = _outbox(tmp_path / "restored", "recB")  # same key, the chain state rolled back
    log = DockLog(tmp_path / "log")
    for _, line in _chain(first) + _chain(again):
        log.add(line)
    held = {hashlib.sha256(d).hexdigest() for _, d in _chain(first) + _chain(again)}
    found = audit_leaves(_leaves(log), Holdings(held, set()), {DEV.device_id: DEV.public_key})
    assert [(f.kind, f.seq) for f in found] == [("equivocation", 0), ("equivocation", 1)]


def test_a_recording_deleted_from_the_camera_before_it_shipped_shows_in_the_log(tmp_path):
    """recB is deleted from the outbox (records, segments, trail lines); the camera records
    recC, whose records ship: the log has seqs 0, 1 and 4, 5."""
    files = _outbox(tmp_path / "cam", "recA", "recB", "recC")
    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        if b"recB" not in line:
            log.add(line)
    found = seq_gaps(_leaves(log))
    assert [(f.kind, f.seq) for f in found] == [("withheld", 2)]
    assert "2..3" in found[0].detail


# -- the upper time bound ----------------------------------------------------------------------
def _stamped(tmp_path, files, tsa_url):
    from tsa.client import TsaClient

    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        log.add(line)
    ex = _exhibit(files, "recA", log)
    body = ex[CHECKPOINT].decode().partition("\n\n")[0] + "\n"
    ex["log/checkpoint.tsr"] = TsaClient(tsa_url).timestamp(hashlib.sha256(body.encode()).digest())
    return ex


def test_t1_is_the_rfc3161_time_of_the_checkpoint_that_includes_the_recording(tmp_path):
    from tsa.testing import running_tsa
    from tsa.verify import verify_token

    files = _outbox(tmp_path / "cam", "recA")
    with running_tsa(tmp_path) as (url, ca):
        ex = _stamped(tmp_path, files, url)
    trust = LogTrust((WITNESS.vkey,), None, None, ca, verify_token)
    report = verify_exhibit(ex, DEV.public_key, trust=trust)
    assert report.ok, report.findings  # recorded in 2023, stamped now
    t1 = report.log["upper_bounds_us"]["recA"]
    body = ex[CHECKPOINT].decode().partition("\n\n")[0] + "\n"
    assert t1 == verify_token(ex["log/checkpoint.tsr"], hashlib.sha256(body.encode()).digest(), ca)
    other_ca = LogTrust((WITNESS.vkey,), None, None, b"not a CA", verify_token)
    unchecked = verify_exhibit(ex, DEV.public_key, trust=other_ca)
    assert unchecked.log["upper_bounds_us"]["recA"] is None
    assert "does not verify" in unchecked.log["time_note"]


def test_a_recording_claiming_a_wall_time_after_t1_is_time_inconsistent(tmp_path):
    files = _outbox(tmp_path / "cam", "recA")
    log = DockLog(tmp_path / "log")
    for _, line in _chain(files):
        log.add(line)
    ex = _exhibit(files, "recA", log)
    ex["log/checkpoint.tsr"] = b"token"
    t1 = 1_600_000_000_000_000  # 2020: before the camera's clock says it recorded

    def stamped_in_2020(token: bytes, digest: bytes, ca: bytes) -> int:
        return t1

    trust = LogTrust((WITNESS.vkey,), None, None, b"ca", stamped_in_2020)
    report = verify_exhibit(ex, DEV.public_key, trust=trust)
    assert [(f.kind, f.recording_id) for f in report.findings] == [("time_inconsistent", "recA")]
    assert not report.ok
