"""The camera deletes a segment only once someone outside the agency has countersigned that it
exists: its receipt's proof must put the record in a checkpoint signed by the pinned dock and
cosigned by the quorum of pinned witnesses. Anything less, and the segment stays, reported,
and is asked about again later."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from nacl.signing import SigningKey

from capture.clock import VirtualClock
from dock.checkpoints import LogConfig, WitnessConfig, origin_for
from dock.client import DockClient
from dock.log_proof import WitnessPolicy, check_proof
from dock.outbox import ChainOutbox
from dock.receipts import SignedReceipt, UploadState
from dock.shipper import Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, segment_bytes
from tlog.checkpoint import Checkpoint
from tlog.cosignature import CosignatureSigner
from tlog.merkle import verify_consistency
from tlog.note import NoteVerifier, add_signatures, open_note, split_note
from witness.client import WitnessConflict

FAST = ShipperConfig(chunk_bytes=8 << 10, jitter=0.0, witness_retry_s=30.0)


class FakeWitness:
    """A tlog-witness in-process (the real one is witness/): it checks the dock's signature
    and the consistency proof from what it cosigned last, and cosigns."""

    def __init__(self, name: str, dock_public_key: bytes) -> None:
        self.signer = CosignatureSigner(name, SigningKey.generate())
        self.dock = NoteVerifier(origin_for_key(dock_public_key), dock_public_key)
        self.size, self.root = 0, b""
        self.down = False
        self.calls = 0

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def client(self, url: str) -> FakeWitness:
        return self

    def add_checkpoint(self, note: bytes, old_size: int, proof: list[bytes]) -> list[str]:
        self.calls += 1
        if self.down:
            raise ConnectionError("witness unreachable")
        text, _ = open_note(note, [self.dock])
        cp = Checkpoint.parse(text)
        if old_size != self.size:
            raise WitnessConflict(self.size)
        if old_size and not verify_consistency(old_size, cp.size, self.root, cp.root, proof):
            raise ValueError("inconsistent")
        self.size, self.root = cp.size, cp.root
        return [self.signer.cosign(text, 1_700_000_000)]


def origin_for_key(pub: bytes) -> str:
    from dock.protocol import key_id

    return origin_for(key_id(pub))


def _wall() -> int:
    import time

    return time.time_ns() // 1000


@pytest.fixture
def witnessed(tmp_path):
    """A dock whose log is cosigned by one witness, which is up."""
    from dock.keys import load_or_create_signing_key

    store = tmp_path / "dock"
    store.mkdir()
    key = load_or_create_signing_key(store / "dock.key")
    w = FakeWitness("witness.example/w1", bytes(key.verify_key))
    cfg = LogConfig((WitnessConfig("http://w1.invalid", w.vkey),))
    h = DockHarness(store, log_config=cfg, witness_client=w.client)
    h.dock.translog.witness_retry_s = 0.0
    h.witness = w
    yield h
    h.close()


def device(h, root, name, segments=2):
    dev = OutboxDevice(root / name, name)
    dev.creds = h.enroll(dev)
    for i in range(segments):
        dev.add_segment(segment_bytes(4000 + i, i))
    dev.end_recording()
    return dev


def shipper(h, dev, policy, client_cls=DockClient):
    clock = VirtualClock()
    client = client_cls(h.url, dev.creds, wall_clock=_wall, timeout=10)
    return Shipper(ChainOutbox(dev.root), client, clock, config=FAST, witnesses=policy), clock


def steps(sh, n=30):
    out = []
    for _ in range(n):
        r = sh.step()
        out.append(r)
        if r.action in ("idle", "waiting"):
            break
    return out


def left_on_camera(dev) -> list[str]:
    return sorted(p.name for p in (dev.root / "segments").iterdir())


def test_a_witnessed_segment_is_deleted(witnessed, tmp_path):
    dev = device(witnessed, tmp_path, "cam-ok")
    sh, _ = shipper(witnessed, dev, WitnessPolicy((witnessed.witness.vkey,)))
    reports = steps(sh)
    assert [r.action for r in reports].count("shipped") == len(dev.records)
    assert left_on_camera(dev) == [] and sh.state.unwitnessed == {}
    note = witnessed.dock.translog.latest.note
    assert {s.name for s in split_note(note)[1]} == {
        origin_for(witnessed.dock.key_id),
        "witness.example/w1",
    }


def test_a_camera_keeps_what_no_pinned_witness_cosigned_and_deletes_once_one_has(
    witnessed, tmp_path
):
    witnessed.witness.down = True
    dev = device(witnessed, tmp_path, "cam-later")
    sh, clock = shipper(witnessed, dev, WitnessPolicy((witnessed.witness.vkey,)))
    reports = steps(sh)
    # everything reached the dock, nothing left the camera: each is reported, and why
    assert {r.action for r in reports} == {"unwitnessed", "waiting"}
    assert len(left_on_camera(dev)) == 2
    assert set(sh.state.unwitnessed) == {f"{r.seq:012d}.{r.type}.json" for r in dev.records}
    assert all("cosigned by 0 of the pinned" in why for why in sh.state.unwitnessed.values())
    assert witnessed.dock.translog.status()["witnesses"][0]["last_error"]
    # the witness is back: the next attempt, when due, gets a fresh, witnessed proof
    witnessed.witness.down = False
    assert steps(sh)[-1].action == "waiting"  # not before it is due
    clock.set(reports[-1].retry_at_us)
    reports = steps(sh)
    assert [r.action for r in reports].count("shipped") == len(dev.records)
    assert left_on_camera(dev) == [] and sh.state.unwitnessed == {}


def test_a_cosignature_by_another_witness_deletes_nothing(witnessed, tmp_path):
    other = CosignatureSigner("witness.example/other", SigningKey.generate())
    dev = device(witnessed, tmp_path, "cam-wrong")
    sh, _ = shipper(witnessed, dev, WitnessPolicy((other.vkey,)))
    reports = steps(sh)
    assert "shipped" not in {r.action for r in reports}
    assert len(left_on_camera(dev)) == 2


class Tamper:
    """A dock client whose receipts' proofs are changed on the way (``how``)."""

    how = None

    @classmethod
    def bind(cls, fn):
        return type("TamperingClient", (TamperingClient,), {"how": staticmethod(fn)})


class TamperingClient(DockClient):
    how = None

    def _fix(self, r: SignedReceipt | None) -> SignedReceipt | None:
        if r is None or r.proof is None or self.how is None:
            return r
        return replace(r, proof=self.how(r.proof))

    def complete(self, segment_id):
        return self._fix(super().complete(segment_id))

    def create_upload(self, *a, **kw) -> UploadState:
        s = super().create_upload(*a, **kw)
        return replace(s, receipt=self._fix(s.receipt))

    def append(self, *a, **kw) -> UploadState:  # the last chunk's answer brings the receipt
        s = super().append(*a, **kw)
        return replace(s, receipt=self._fix(s.receipt))

    def put_segment(self, *a, **kw) -> tuple[UploadState, bool]:  # a whole segment's answer
        s, took = super().put_segment(*a, **kw)
        return replace(s, receipt=self._fix(s.receipt)), took


def _cosigned_other_checkpoint(witnessed):
    """The proof's checkpoint with the witness's (valid) cosignature of ANOTHER checkpoint:
    the same log at the same size with another root."""
    w = witnessed.witness

    def how(proof):
        text, sigs = split_note(proof["checkpoint"].encode())
        cp = Checkpoint.parse(text)
        other = Checkpoint(cp.origin, cp.size, bytes(32)).body()
        dock_sig = [s.line for s in sigs if s.name == cp.origin]
        forged = add_signatures(
            (text + "\n" + dock_sig[0] + "\n").encode(), [w.signer.cosign(other, 1_700_000_000)]
        )
        return {**proof, "checkpoint": forged.decode()}

    return how


def _proof_of_another_leaf(_witnessed):
    def how(proof):
        return {**proof, "leaf_index": proof["leaf_index"] - 1}

    return how


def _path_of_another_leaf(_witnessed):
    def how(proof):
        inc = list(proof["inclusion"])
        inc[0] = inc[-1] if len(inc) > 1 else "A" * 43 + "="
        return {**proof, "inclusion": inc[::-1]}

    return how


@pytest.mark.parametrize(
    "forge", [_cosigned_other_checkpoint, _proof_of_another_leaf, _path_of_another_leaf]
)
def test_a_receipt_without_a_valid_witnessed_proof_keeps_the_segment(witnessed, tmp_path, forge):
    dev = device(witnessed, tmp_path, f"cam-{forge.__name__[1:12].replace('_', '-')}")
    policy = WitnessPolicy((witnessed.witness.vkey,))
    sh, clock = shipper(witnessed, dev, policy, Tamper.bind(forge(witnessed)))
    reports = steps(sh)
    assert "shipped" not in {r.action for r in reports}
    assert len(left_on_camera(dev)) == 2 and sh.state.unwitnessed
    # the same camera, the proofs as the dock gave them: deleted
    honest = DockClient(witnessed.url, dev.creds, wall_clock=_wall, timeout=10)
    sh.client = honest
    clock.set(max(r.retry_at_us or 0 for r in reports))
    assert "shipped" in {r.action for r in steps(sh)}
    assert left_on_camera(dev) == []


def test_a_camera_pinning_no_witness_deletes_on_the_receipt_and_says_unwitnessed(
    witnessed, tmp_path
):
    witnessed.witness.down = True
    dev = device(witnessed, tmp_path, "cam-none")
    sh, _ = shipper(witnessed, dev, None)
    assert sh.state.witnessed is False
    steps(sh)
    assert left_on_camera(dev) == []


def test_check_proof_needs_the_quorum_and_the_pinned_dock(witnessed, tmp_path):
    dev = device(witnessed, tmp_path, "cam-unit", segments=1)
    sh, _ = shipper(witnessed, dev, None)
    steps(sh)
    kept = sorted((dev.root.parent / "receipts").glob("*.json"))
    r = SignedReceipt.from_json(json.loads(kept[0].read_bytes()))
    line = next(x.line for x in dev.records if x.sha256 == r.receipt.segment_id)
    w, pub = witnessed.witness, witnessed.public_key
    other = CosignatureSigner("witness.example/two", SigningKey.generate())
    assert check_proof(r.proof, r.receipt.leaf_index, line, pub, WitnessPolicy((w.vkey,))) is None
    two = WitnessPolicy((w.vkey, other.vkey), quorum=2)
    assert "1 of the pinned" in check_proof(r.proof, r.receipt.leaf_index, line, pub, two)
    another_dock = bytes(SigningKey.generate().verify_key)
    assert "not signed by the pinned dock" in check_proof(
        r.proof, r.receipt.leaf_index, line, another_dock, WitnessPolicy((w.vkey,))
    )
    assert "no proof" in check_proof(None, r.receipt.leaf_index, line, pub, WitnessPolicy())
    assert "does not put this record" in check_proof(
        r.proof, r.receipt.leaf_index, line + b" ", pub, WitnessPolicy((w.vkey,))
    )


def test_an_unreachable_witness_is_not_asked_on_every_upload(witnessed, tmp_path):
    witnessed.witness.down = True
    witnessed.dock.translog.witness_retry_s = 3600.0
    dev = device(witnessed, tmp_path, "cam-away", segments=3)
    sh, _ = shipper(witnessed, dev, None)
    steps(sh)
    assert witnessed.witness.calls == 1  # then the dock signs alone until it is due again
    assert witnessed.dock.translog.latest.size == witnessed.dock.store.log_size()
