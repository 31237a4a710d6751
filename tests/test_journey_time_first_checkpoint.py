"""Tight T1 (issue 11, point 6): a recording's upper time bound is the RFC 3161 time of the
FIRST checkpoint the dock issued that includes it, not of the dock's latest checkpoint at
export (which can be months later). Over a real dock whose log a real witness cosigns and a
real RFC 3161 TSA (``openssl ts -reply``) time-stamps: the exhibit carries, per record, that
first checkpoint (``log/checkpoints/<m>``, ``<m>.tsr``) and the record's inclusion proof in it
(the ``first`` member of its ``log/proofs.jsonl`` line); the verifier and the store check read
T1 from it; a broken one is ``altered``, a wall time claimed after it ``time_inconsistent``."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from capture.clock import VirtualClock
from crypto import testing as ct
from crypto.evidence import SegmentInfo
from crypto.verify.exhibit import evidence_of, read_exhibit, verify_exhibit_path
from crypto.verify.log import LogTrust
from dock.checkpoints import checkpoint_at, latest_checkpoint
from dock.client import DockClient
from dock.export import export_recording
from dock.log_audit import audit_store
from dock.log_proof import WitnessPolicy
from dock.outbox import ChainOutbox
from dock.shipper import Shipper, ShipperConfig
from dock.testing import OutboxDevice, witnessed_dock
from tlog.note import split_note
from tsa.verify import verify_token

DAY_US = 86_400_000_000


def _wall() -> int:
    return time.time_ns() // 1000


def _gen_time(note: bytes, token: bytes, ca: bytes) -> int:
    body, _ = split_note(note)
    return verify_token(token, hashlib.sha256(body.encode()).digest(), ca)


class Camera:
    """A camera's identity (enrolled at the dock) and its outbox, written by the real
    evidence sink (sealed segments, signed chain records: crypto/testing.py)."""

    def __init__(self, h, root: Path, name: str) -> None:
        self.dev = OutboxDevice(root / name / "ids", name, seed=ct.seed(name))
        self.dev.creds = h.enroll(self.dev)
        self.public_key = self.dev.public_key
        self.sink = ct.make_sink(root / name, self.dev.identity, ct.agency_key())
        self.outbox = root / name / "outbox"

    def record(self, recording_id: str, wall_start_us: int, segments: int = 1) -> None:
        """A recording whose segments the camera's clock says began at ``wall_start_us``."""
        for i in range(segments):
            start = 10 * ct.S + i * ct.S
            info = SegmentInfo(recording_id, i, start, wall_start_us + i * ct.S, "unsynced", {})
            self.sink.open_segment(info)
            self.sink.write_init(ct.blob(f"{recording_id}/{i}/init", 64))
            self.sink.write_fragment(ct.blob(f"{recording_id}/{i}/0", 300), start, start + ct.S)
            self.sink.close_segment(start + ct.S, wall_start_us + (i + 1) * ct.S)
        self.sink.end_recording(recording_id, "stopped", 10 * ct.S + segments * ct.S)


def _ship(h, vouchers, cam: Camera) -> None:
    client = DockClient(h.url, cam.dev.creds, wall_clock=_wall, timeout=10)
    policy = WitnessPolicy((vouchers.witness_vkey,))
    outbox = ChainOutbox(cam.outbox)
    sh = Shipper(outbox, client, VirtualClock(), config=ShipperConfig(), witnesses=policy)
    actions = [sh.step().action for _ in range(30)]
    assert "shipped" in actions and not list((cam.outbox / "segments").iterdir()), actions


@pytest.fixture(scope="module")
def docked(tmp_path_factory):
    """cam-a ships recording ``early`` (its camera's clock honest), then cam-b ships many
    recordings (later checkpoints), then cam-c ships ``ahead`` (its clock a day fast). Each
    is exported; the dock stays up."""
    root = tmp_path_factory.mktemp("t1")
    with witnessed_dock(root) as (h, v):
        a = Camera(h, root, "cam-a")
        a.record("early", _wall() - 10 * ct.S, segments=2)
        _ship(h, v, a)
        b = Camera(h, root, "cam-b")
        for i in range(4):
            b.record(f"later{i}", _wall() - 10 * ct.S)
        _ship(h, v, b)
        c = Camera(h, root, "cam-c")
        c.record("ahead", _wall() + DAY_US)  # its clock a day fast
        _ship(h, v, c)
        exports = {}
        for cam, rec in ((a, "early"), (c, "ahead")):
            out = root / f"exhibit-{rec}"
            export_recording(h.store_dir, rec, out, None, device_id=cam.dev.device_id)
            exports[rec] = out
        trust = LogTrust((v.witness_vkey,), None, h.public_key, v.tsa_ca_pem, verify_token)
        yield {"h": h, "v": v, "a": a, "c": c, "ex": exports, "trust": trust, "root": root}


def _proofs(ex: Path) -> list[dict]:
    return [json.loads(x) for x in (ex / "log" / "proofs.jsonl").read_text().splitlines()]


def _write_proofs(ex: Path, proofs: list[dict]) -> None:
    (ex / "log" / "proofs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in proofs))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_t1_is_the_rfc3161_time_of_the_first_checkpoint_including_the_recording(docked):
    h, v, ex = docked["h"], docked["v"], docked["ex"]["early"]
    proofs = _proofs(ex)
    assert len(proofs) == 3 and all("first" in p for p in proofs)
    end = max(proofs, key=lambda p: p["leaf_index"])  # the end record: logged last
    m = end["first"]["tree_size"]
    assert m > end["leaf_index"]
    kept = checkpoint_at(h.store_dir, m)  # the dock kept it when it issued it
    assert (ex / "log" / "checkpoints" / str(m)).read_bytes() == kept.note
    assert (ex / "log" / "checkpoints" / f"{m}.tsr").read_bytes() == kept.token
    latest = latest_checkpoint(h.store_dir)
    assert latest.size > m  # cam-b's and cam-c's uploads came after
    assert not any(n.startswith("log/") for n in evidence_of(read_exhibit(ex)))  # papers
    report = verify_exhibit_path(
        ex, device_public_key=docked["a"].public_key, trust=docked["trust"]
    )
    assert report.ok, report.findings
    first_time = _gen_time(kept.note, kept.token, v.tsa_ca_pem)
    bundle_time = _gen_time(
        (ex / "log" / "checkpoint").read_bytes(),
        (ex / "log" / "checkpoint.tsr").read_bytes(),
        v.tsa_ca_pem,
    )
    (rec,) = report.recordings
    assert rec.recorded_before_us == first_time == report.log["upper_bounds_us"]["early"]
    assert first_time < bundle_time  # the latest checkpoint's time: a looser bound
    assert report.log["first"][str(end_seq(ex, end))] == [m, first_time]


def end_seq(ex: Path, proof: dict) -> int:
    for p in (ex / "manifests").iterdir():
        if hashlib.sha256(p.read_bytes()).hexdigest() == proof["record_sha256"]:
            return int(p.name.split(".")[0])
    raise AssertionError("no record for the proof")


def test_the_store_check_gives_each_recording_the_same_t1(docked):
    h = docked["h"]
    audit = audit_store(h.store_dir, docked["trust"])
    assert [f.recording_id for f in audit.findings] == ["ahead"]  # cam-c's fast clock only
    report = verify_exhibit_path(
        docked["ex"]["early"], device_public_key=docked["a"].public_key, trust=docked["trust"]
    )
    t1 = audit.recordings["early"]["recorded_before_us"]
    assert t1 == report.recordings[0].recorded_before_us
    later = [audit.recordings[f"later{i}"]["recorded_before_us"] for i in range(4)]
    assert all(t is not None and t > t1 for t in later)


def test_a_tampered_first_proof_is_altered_naming_the_checkpoint(docked, tmp_path):
    ex = _copy(docked["ex"]["early"], tmp_path / "ex")
    proofs = _proofs(ex)
    p = max(proofs, key=lambda p: p["leaf_index"])
    p["first"]["inclusion"][0] = "A" * 43 + "="  # 32 zero bytes
    _write_proofs(ex, proofs)
    report = verify_exhibit_path(
        ex, device_public_key=docked["a"].public_key, trust=docked["trust"]
    )
    assert not report.ok
    bad = [f for f in report.findings if f.kind == "altered"]
    assert [f.file for f in bad] == [f"log/checkpoints/{p['first']['tree_size']}"]
    assert "does not lead to the root" in bad[0].detail


def test_a_first_token_that_does_not_verify_is_altered(docked, tmp_path):
    ex = _copy(docked["ex"]["early"], tmp_path / "ex")
    m = max(_proofs(ex), key=lambda p: p["leaf_index"])["first"]["tree_size"]
    # another checkpoint's genuine token: over another body
    (ex / "log" / "checkpoints" / f"{m}.tsr").write_bytes((ex / "log/checkpoint.tsr").read_bytes())
    report = verify_exhibit_path(
        ex, device_public_key=docked["a"].public_key, trust=docked["trust"]
    )
    assert [(f.kind, f.file) for f in report.findings] == [("altered", f"log/checkpoints/{m}.tsr")]


def test_a_proof_line_without_first_is_altered(docked, tmp_path):
    ex = _copy(docked["ex"]["early"], tmp_path / "ex")
    proofs = _proofs(ex)
    del proofs[0]["first"]
    _write_proofs(ex, proofs)
    report = verify_exhibit_path(
        ex, device_public_key=docked["a"].public_key, trust=docked["trust"]
    )
    assert [(f.kind, f.file) for f in report.findings] == [("altered", "log/proofs.jsonl")]
    assert "no `first` member" in report.findings[0].detail


def test_a_wall_end_claimed_after_the_first_checkpoint_is_time_inconsistent(docked):
    report = verify_exhibit_path(
        docked["ex"]["ahead"], device_public_key=docked["c"].public_key, trust=docked["trust"]
    )
    assert not report.ok
    assert [(f.kind, f.recording_id, f.segment_index) for f in report.findings] == [
        ("time_inconsistent", "ahead", 0)
    ]
    assert report.findings[0].file.startswith("manifests/")
    assert "first includes its manifest" in report.findings[0].detail
    audit = audit_store(docked["h"].store_dir, docked["trust"])
    assert audit.recordings["ahead"]["status"] == "time_inconsistent"
    assert [f.recording_id for f in audit.findings if f.kind == "time_inconsistent"] == ["ahead"]


def test_bwv_verify_prints_the_tight_t1_and_refuses_a_ca_that_is_not_pem(docked, tmp_path):
    from click.testing import CliRunner

    from bwv.cli import main

    ex, v = docked["ex"]["early"], docked["v"]
    ca = tmp_path / "ca.pem"
    ca.write_bytes(v.tsa_ca_pem)
    base = ["verify", str(ex), "--device-pub", str(ex / "device.pub")]
    base += ["--witness-key", v.witness_vkey, "--dock-pub", str(tmp_path / "dock.pub")]
    (tmp_path / "dock.pub").write_text(docked["h"].public_key.hex() + "\n")
    r = CliRunner().invoke(main, [*base, "--tsa-ca", str(ca)])
    assert r.exit_code == 0, r.output
    t1 = audit_store(docked["h"].store_dir, docked["trust"]).recordings["early"]
    shown = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t1["recorded_before_us"] / 1e6))
    assert f"recorded before {shown}" in r.output, r.output
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    r = CliRunner().invoke(main, [*base, "--tsa-ca", str(tmp_path / "bad.pem")])
    assert r.exit_code == 2 and "not a PEM certificate" in r.output
    assert "Traceback" not in r.output


def test_a_claim_between_the_first_and_the_latest_checkpoint_is_caught_by_the_first(tmp_path):
    """The tight bound matters: the camera claims a time after the first checkpoint that
    includes its record, though before the dock's latest; only the first one catches it."""
    import base64

    from crypto.verify.exhibit import verify_exhibit
    from tests.test_journey_verifylog_checks import DEV, WITNESS, DockLog, _chain, _exhibit, _outbox

    files = _outbox(tmp_path / "cam", "recA")  # its clock says 2023-11-14 22:13:30 or so
    log = DockLog(tmp_path / "log")
    leaves = [log.add(line) for _, line in _chain(files)]
    m, first_note = log.store.size, log.checkpoint()
    for i in range(5):
        log.add(b"later %d" % i)  # other cameras' records: the dock's latest is later
    ex = _exhibit(files, "recA", log)
    proofs = [json.loads(x) for x in ex["log/proofs.jsonl"].splitlines()]
    for p in proofs:
        inc = log.store.inclusion_proof(p["leaf_index"], m)
        p["first"] = {"tree_size": m, "inclusion": [base64.b64encode(h).decode() for h in inc]}
    assert {p["leaf_index"] for p in proofs} == set(leaves)
    ex["log/proofs.jsonl"] = b"".join(json.dumps(p).encode() + b"\n" for p in proofs)
    ex[f"log/checkpoints/{m}"] = first_note
    ex[f"log/checkpoints/{m}.tsr"] = b"first token"
    ex["log/checkpoint.tsr"] = b"latest token"
    first_t1, latest_t1 = ct.WALL0, ct.WALL0 + DAY_US  # the claim lies between them
    times = {b"first token": first_t1, b"latest token": latest_t1}

    def token_time(token: bytes, digest: bytes, ca: bytes) -> int:
        return times[token]

    trust = LogTrust((WITNESS.vkey,), None, None, b"ca", token_time)
    report = verify_exhibit(ex, DEV.public_key, trust=trust)
    assert [(f.kind, f.segment_index) for f in report.findings] == [("time_inconsistent", 0)]
    assert report.recordings[0].recorded_before_us == first_t1
    del ex[f"log/checkpoints/{m}.tsr"]  # no token for the first: the latest's bound, looser
    report = verify_exhibit(ex, DEV.public_key, trust=trust)
    assert report.ok, report.findings
    assert report.recordings[0].recorded_before_us == latest_t1
