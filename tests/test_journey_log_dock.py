"""The dock's transparency log, over the real TLS dock: every record it accepts and every
custody entry it appends is a leaf, in order; each upload ends in a checkpoint signed by the
dock key; every receipt carries its record's proof, which the camera checks itself."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from capture.clock import VirtualClock
from dock.checkpoints import latest_checkpoint, log_dir, origin_for
from dock.leaves import CUSTODY_DOMAIN, RECORD_DOMAIN, custody_leaf_data
from dock.log_proof import WitnessPolicy, check_proof
from dock.outbox import ChainOutbox
from dock.protocol import segment_id_for
from dock.receipts import RECEIPT_TYPE, SignedReceipt
from dock.shipper import Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, segment_bytes
from dock.translog import proof_for_record
from tlog.checkpoint import Checkpoint
from tlog.merkle import leaf_hash, root_from_hashes, verify_inclusion
from tlog.note import NoteVerifier, open_note
from tlog.store import LogStore

FAST = ShipperConfig(chunk_bytes=8 << 10, jitter=0.0)


def _wall() -> int:
    import time

    return time.time_ns() // 1000


def ship_all(harness, dev, policy=None, clock=None):
    from dock.client import DockClient

    clock = clock or VirtualClock()
    client = DockClient(harness.url, dev.creds, wall_clock=_wall, timeout=10)
    sh = Shipper(ChainOutbox(dev.root), client, clock, config=FAST, witnesses=policy)
    reports = []
    for _ in range(100):
        r = sh.step()
        reports.append(r)
        if r.action in ("idle", "waiting"):
            break
    return sh, reports


def new_device(harness, root, name, segments=2):
    dev = OutboxDevice(root / name, name)
    dev.creds = harness.enroll(dev)
    for i in range(segments):
        dev.add_segment(segment_bytes(5000 + i, i))
    dev.end_recording()
    return dev


def kept_receipts(dev) -> list[SignedReceipt]:
    d = dev.root.parent / "receipts"
    return [SignedReceipt.from_json(json.loads(p.read_bytes())) for p in sorted(d.glob("*.json"))]


@pytest.fixture
def harness(tmp_path):
    h = DockHarness(tmp_path / "dock")
    yield h
    h.close()


def test_every_accepted_record_and_custody_entry_is_a_leaf_in_order(harness, tmp_path):
    dev = new_device(harness, tmp_path, "cam-leaves")
    ship_all(harness, dev)
    store = harness.dock.store
    leaves = store.log_leaves(-1, 10_000)
    entries = store.custody_log(limit=10_000)
    assert [x.index for x in leaves] == list(range(len(leaves)))
    records = [x for x in leaves if x.kind == "record"]
    custody = [x for x in leaves if x.kind == "custody"]
    # every custody entry (token, enrolment, time sync, receipts...) is a leaf: its whole JSON
    assert [x.data for x in custody] == [custody_leaf_data(e) for e in entries]
    assert all(x.data.startswith(CUSTODY_DOMAIN) for x in custody)
    # every chain record shipped is a leaf: its exact line, the one the device signed
    assert [x.data for x in records] == [RECORD_DOMAIN + r.line for r in dev.records]
    # a record's leaf comes right before its `received` entry's
    for x in records:
        after = json.loads(leaves[x.index + 1].data[len(CUSTODY_DOMAIN) :])
        assert after["action"] == "received"
        assert after["detail"]["manifest_sha256"] == segment_id_for(x.data[len(RECORD_DOMAIN) :])


def test_each_upload_ends_in_a_checkpoint_signed_by_the_dock(harness, tmp_path):
    dev = new_device(harness, tmp_path, "cam-checkpoint")
    ship_all(harness, dev)
    store = harness.dock.store
    cp = latest_checkpoint(harness.store_dir)
    assert cp is not None
    origin = origin_for(harness.dock.key_id)
    text, names = open_note(cp.note, [NoteVerifier(origin, harness.public_key)])
    assert names == [origin]
    parsed = Checkpoint.parse(text)
    assert parsed.origin == f"bwv-dock/{harness.dock.key_id}"
    hashes = [x.hash for x in store.log_leaves(-1, 10_000)]
    assert parsed.size <= len(hashes)
    assert parsed.root == root_from_hashes(hashes[: parsed.size])
    # kept by size too, and the tree on disk is the store's leaves
    assert (log_dir(harness.store_dir) / "checkpoints" / str(parsed.size)).read_bytes() == cp.note
    harness.dock.translog.sync()
    harness.dock.translog.close()
    tree = LogStore(log_dir(harness.store_dir) / "tree", readonly=True)
    assert [tree.leaf_hash(i) for i in range(tree.size)] == hashes
    # no TSA configured: no token, and the log says so
    status = harness.dock.translog.status()
    assert cp.token is None and status["untimestamped"] and status["unwitnessed"]


def test_every_receipt_carries_a_proof_the_camera_checks(harness, tmp_path):
    dev = new_device(harness, tmp_path, "cam-proof")
    ship_all(harness, dev)
    receipts = kept_receipts(dev)
    assert len(receipts) == len(dev.records)
    by_sid = {r.sha256: r for r in dev.records}
    for signed in receipts:
        rc = signed.receipt
        assert rc.type == RECEIPT_TYPE == "bwv-dock-receipt-v3"
        line = by_sid[rc.segment_id].line
        assert signed.proof is not None and signed.proof["leaf_index"] == rc.leaf_index
        no_witness = WitnessPolicy()
        assert (
            check_proof(signed.proof, rc.leaf_index, line, harness.public_key, no_witness) is None
        )
        # the proof in plain RFC 9162 terms
        cp = Checkpoint.parse(signed.proof["checkpoint"].split("\n\n")[0] + "\n")
        path = [base64.b64decode(h) for h in signed.proof["inclusion"]]
        assert verify_inclusion(
            leaf_hash(RECORD_DOMAIN + line), rc.leaf_index, cp.size, path, cp.root
        )


def test_log_routes_are_public_and_prove_themselves(harness, tmp_path):
    dev = new_device(harness, tmp_path, "cam-routes", segments=1)
    ship_all(harness, dev)
    with harness.http() as http:
        note = http.get("/v1/log/checkpoint")
        assert note.status_code == 200 and note.headers["content-type"].startswith("text/plain")
        text, _ = open_note(
            note.content, [NoteVerifier(origin_for(harness.dock.key_id), harness.public_key)]
        )
        cp = Checkpoint.parse(text)
        rec = dev.records[0]
        index = harness.dock.store.record_leaf_index(dev.device_id, rec.sha256)
        proof = http.get(f"/v1/log/proof/{index}").json()
        assert proof["tree_size"] == cp.size
        path = [base64.b64decode(h) for h in proof["inclusion"]]
        assert verify_inclusion(leaf_hash(RECORD_DOMAIN + rec.line), index, cp.size, path, cp.root)
        assert http.get(f"/v1/log/proof/{cp.size}").status_code == 404
        assert http.get("/v1/log/checkpoint.tsr").status_code == 404  # no TSA: no token
        status = http.get("/v1/log/status").json()
        assert status["unwitnessed"] is True
        assert "no witness configured" in " ".join(status["notes"])


def test_proof_for_record_gives_exhibits_the_same_proof(harness, tmp_path):
    dev = new_device(harness, tmp_path, "cam-exhibit", segments=1)
    ship_all(harness, dev)
    store = harness.dock.store
    cp = latest_checkpoint(harness.store_dir)
    for rec in dev.records:
        got = proof_for_record(store, dev.device_id, rec.seq)
        assert got is not None and got["record_sha256"] == rec.sha256
        assert got["tree_size"] == cp.size
        served = harness.dock.translog.proof(got["leaf_index"])
        assert served["inclusion"] == got["inclusion"]
    assert proof_for_record(store, dev.device_id, 99) is None


def test_a_status_query_answers_with_a_fresh_proof(harness, tmp_path):
    dev = new_device(harness, tmp_path, "cam-fresh", segments=1)
    ship_all(harness, dev)
    first = kept_receipts(dev)[0]
    other = new_device(harness, tmp_path, "cam-other", segments=1)
    ship_all(harness, other)
    from dock.client import DockClient

    with DockClient(harness.url, dev.creds, wall_clock=_wall) as client:
        state = client.upload_state(first.receipt.segment_id)
    assert state is not None and state.receipt is not None
    assert state.receipt.proof["tree_size"] > first.proof["tree_size"]
    assert state.receipt.signature == first.signature  # the same signed receipt


def test_the_openapi_lists_the_log_routes(harness):
    with httpx.Client(base_url=harness.url, verify=harness.verify) as http:
        paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/log/checkpoint", "/v1/log/proof/{index}"} <= set(paths)


def test_a_device_status_says_what_the_log_lacks(harness, tmp_path):
    from dock.client import DockClient

    dev = new_device(harness, tmp_path, "cam-status", segments=1)
    with DockClient(harness.url, dev.creds, wall_clock=_wall) as client:
        log = client.status()["log"]
    assert log["origin"] == f"bwv-dock/{harness.dock.key_id}"
    assert log["unwitnessed"] is True and log["untimestamped"] is True
