"""Issue 11, the swapped agency key: footage sealed to a substitute ``agency.pub`` is refused
by the dock with its own code and reported ``wrong_agency_key`` by ``bwv verify`` given the
real agency key (format v2: the agency key id is signed in every segment header and
manifest)."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.public import PrivateKey

from bwv.cli import main
from capture.clock import MonotonicClock
from crypto.identity import write_secret_key
from crypto.records import RecordError, sign_record, verify_line
from crypto.seal import parse_segment
from crypto.testing import device_identity, make_sink, write_recording
from dock.client import DeviceCredentials, DockClient, DockRefused, enroll
from dock.protocol import Code
from dock.server import wall_clock_us
from dock.shipper import ChainOutbox, Shipper
from dock.testing import DockHarness, declared_digest

REAL = PrivateKey(hashlib.sha256(b"the agency").digest())
SUBSTITUTE = PrivateKey(hashlib.sha256(b"a substitute agency.pub").digest())


def kid(sk: PrivateKey) -> str:
    return hashlib.sha256(bytes(sk.public_key)).hexdigest()[:16]


def _record(root: Path, sealed_to: PrivateKey, device_id: str = "cam-swapped") -> Path:
    """A recording of 2 segments by a camera whose agency.pub is ``sealed_to``'s."""
    ident = device_identity(device_id)
    sink = make_sink(root, ident, sealed_to)
    write_recording(sink, "rec-1", segments=2, fragments=2)
    sink.close()
    (root / "device.pub").write_text(ident.public_key.hex() + "\n")
    return root / "outbox"


def _keys(tmp: Path) -> tuple[Path, Path]:
    key, pub = tmp / "agency.key", tmp / "agency.pub"
    write_secret_key(key, bytes(REAL))
    pub.write_text(bytes(REAL.public_key).hex() + "\n")
    return key, pub


def _ship(harness: DockHarness, outbox: Path, device_id: str) -> list:
    ident = device_identity(device_id)
    got = enroll(
        harness.url,
        device_id,
        ident,
        ident.public_key,
        harness.token(device_id),
        wall_clock=wall_clock_us,
        expected_dock_key=harness.public_key,
    )
    creds = DeviceCredentials(device_id, ident, got.dock_public_key)
    with DockClient(harness.url, creds, wall_clock=wall_clock_us) as client:
        return Shipper(ChainOutbox(outbox), client, MonotonicClock()).drain()


def test_both_the_header_and_the_manifest_sign_the_agency_key_sealed_to(tmp_path):
    outbox = _record(tmp_path, SUBSTITUTE)
    for seg in sorted((outbox / "segments").glob("*.bwvseg")):
        assert parse_segment(seg.read_bytes()).context.agency_key_id == kid(SUBSTITUTE)
    manifests = [json.loads(p.read_bytes())["record"] for p in (outbox / "chain").iterdir()]
    ids = [m["agency_key_id"] for m in manifests if m["type"] == "manifest"]
    assert ids == [kid(SUBSTITUTE)] * 2
    assert {m["v"] for m in manifests} == {4}


def test_a_version_3_record_is_refused_with_its_version():
    ident = device_identity("cam-v1")
    line = sign_record(
        ident,
        {
            "type": "end",
            "v": 4,
            "suite": "ed25519",
            "device_id": ident.device_id,
            "key_id": ident.key_id,
            "seq": 0,
            "prev_sha256": None,
            "firmware_version": "t",
            "recording_id": "r",
            "reason": "stopped",
            "end_us": 1,
            "segment_count": 0,
            "recovered": False,
            "counter": None,
        },
    ).line
    old = line.replace(b'"v":4', b'"v":3')
    with pytest.raises(RecordError, match="format version 3: this reader knows version 4 only"):
        verify_line(old, ident.public_key)


def test_the_dock_refuses_footage_sealed_to_a_substitute_agency_key(tmp_path):
    outbox = _record(tmp_path / "cam", SUBSTITUTE)
    harness = DockHarness(tmp_path / "dock", agency_public_key=bytes(REAL.public_key))
    try:
        reports = _ship(harness, outbox, "cam-swapped")
        refused = [r for r in reports if r.action == "refused"]
        assert len(refused) == 2  # both segments; each said why
        assert all(kid(SUBSTITUTE) in r.detail and kid(REAL) in r.detail for r in refused)
        held = harness.dock.store.held_segments("cam-swapped")
        assert not [h for h in held if h.stored_size > 0]  # no footage taken in
    finally:
        harness.close()
    # the camera keeps its footage: no receipt, no delete
    assert len(list((outbox / "segments").glob("*.bwvseg"))) == 2


def test_the_refusal_has_its_own_code_on_the_wire(tmp_path):
    outbox = _record(tmp_path / "cam", SUBSTITUTE)
    harness = DockHarness(tmp_path / "dock", agency_public_key=bytes(REAL.public_key))
    try:
        ident = device_identity("cam-swapped")
        got = enroll(
            harness.url,
            ident.device_id,
            ident,
            ident.public_key,
            harness.token(ident.device_id),
            wall_clock=wall_clock_us,
            expected_dock_key=harness.public_key,
        )
        creds = DeviceCredentials(ident.device_id, ident, got.dock_public_key)
        manifest = (outbox / "chain" / "000000000000.manifest.json").read_bytes()
        blob = (outbox / "segments" / "rec-1_0000.bwvseg").read_bytes()
        sha = declared_digest(blob)
        segment_id = hashlib.sha256(manifest).hexdigest()
        with (
            DockClient(harness.url, creds, wall_clock=wall_clock_us) as client,
            pytest.raises(DockRefused) as err,
        ):
            client.create_upload(segment_id, manifest, len(blob), sha)
        assert err.value.status == 422
        assert err.value.code == Code.WRONG_AGENCY_KEY == "wrong_agency_key"
    finally:
        harness.close()


def test_the_dock_refuses_a_header_sealed_elsewhere_than_its_manifest_says(tmp_path):
    """The manifest names the agency's key, the stored header the substitute: refused at
    completion by the header (and logged ``rejected``); the verifier calls it ``altered``."""
    outbox = _record(tmp_path / "cam", SUBSTITUTE)
    _lie_about_the_agency_key(outbox, kid(REAL))
    harness = DockHarness(tmp_path / "dock", agency_public_key=bytes(REAL.public_key))
    try:
        reports = _ship(harness, outbox, "cam-swapped")
        refused = [r for r in reports if r.action == "refused"]
        assert len(refused) == 2
        assert all("header names agency key " + kid(SUBSTITUTE) in r.detail for r in refused)
        rejected = [e for e in harness.dock.store.custody_log() if e.action == "rejected"]
        assert len(rejected) == 2
    finally:
        harness.close()
    r = CliRunner().invoke(
        main, ["verify", str(outbox), "--device-pub", str(outbox.parent / "device.pub"), "--json"]
    )
    assert r.exit_code == 1
    kinds = [f["kind"] for f in json.loads(r.output)["findings"]]
    assert kinds.count("altered") == 2 and "wrong_agency_key" not in kinds


def _lie_about_the_agency_key(outbox: Path, agency_key_id: str) -> None:
    ident = device_identity("cam-swapped")
    records = [json.loads(p.read_bytes())["record"] for p in sorted((outbox / "chain").iterdir())]
    for p in (outbox / "chain").iterdir():
        p.unlink()
    prev = None
    for rec in records:
        rec["prev_sha256"] = prev
        if rec["type"] == "manifest":
            rec["agency_key_id"] = agency_key_id
        signed = sign_record(ident, rec)
        (outbox / "chain" / f"{rec['seq']:012d}.{rec['type']}.json").write_bytes(signed.line)
        prev = signed.sha256


@pytest.mark.parametrize("given", ["--agency-key", "--agency-pub"])
def test_bwv_verify_given_the_real_agency_key_reports_wrong_agency_key(tmp_path, given):
    outbox = _record(tmp_path / "cam", SUBSTITUTE)
    key, pub = _keys(tmp_path)
    args = ["verify", str(outbox), "--device-pub", str(tmp_path / "cam" / "device.pub")]
    r = CliRunner().invoke(main, [*args, given, str(key if given == "--agency-key" else pub)])
    assert r.exit_code == 1, r.output
    assert "wrong_agency_key: segment rec-1/0 is sealed to agency key " + kid(SUBSTITUTE) in (
        r.output
    )
    assert "NOT VERIFIED" in r.output
    # the same camera, sealing to the agency: verified with either key
    good = _record(tmp_path / "good", REAL, "cam-good")
    args = ["verify", str(good), "--device-pub", str(tmp_path / "good" / "device.pub")]
    r = CliRunner().invoke(main, [*args, given, str(key if given == "--agency-key" else pub)])
    assert r.exit_code == 0, r.output


def test_a_dock_without_an_agency_key_says_so(tmp_path):
    harness = DockHarness(tmp_path / "dock")
    harness.close()
    r = CliRunner().invoke(main, ["dock", "status", "--store", str(tmp_path / "dock")])
    assert r.exit_code == 0, r.output
    assert "agency key: no agency key pinned: the dock cannot refuse footage sealed" in r.output
    r = CliRunner().invoke(main, ["dock", "status", "--store", str(tmp_path / "dock"), "--json"])
    assert json.loads(r.output)["agency_key_id"] is None
    harness = DockHarness(tmp_path / "dock", agency_public_key=bytes(REAL.public_key))
    harness.close()
    r = CliRunner().invoke(main, ["dock", "status", "--store", str(tmp_path / "dock"), "--json"])
    assert json.loads(r.output)["agency_key_id"] == kid(REAL)


def test_the_pinned_agency_key_is_not_replaced_silently(tmp_path):
    store = tmp_path / "dock"
    DockHarness(store, agency_public_key=bytes(REAL.public_key)).close()
    other = tmp_path / "other.pub"
    other.write_text(bytes(SUBSTITUTE.public_key).hex() + "\n")
    with socket.create_server(("127.0.0.1", 0)) as taken:  # were it not refused: no serving
        port = taken.getsockname()[1]
        r = CliRunner().invoke(
            main,
            ["dock", "serve", "--store", str(store), "--agency-pub", str(other)]
            + ["--listen", f"127.0.0.1:{port}"],
        )
    assert r.exit_code == 2
    assert f"pinned to agency key {kid(REAL)}, not {kid(SUBSTITUTE)}" in r.output
    assert "Traceback" not in r.output


def test_a_dock_pinned_late_finds_what_it_took_sealed_elsewhere(tmp_path):
    """Without a pinned key the dock takes the footage (and says it cannot check); once
    pinned, `bwv dock status --verify` finds the segments sealed to another key."""
    outbox = _record(tmp_path / "cam", SUBSTITUTE)
    harness = DockHarness(tmp_path / "dock")
    try:
        reports = _ship(harness, outbox, "cam-swapped")
        assert [r.action for r in reports].count("shipped") == 3  # 2 segments, the end
    finally:
        harness.close()
    store = str(tmp_path / "dock")
    r = CliRunner().invoke(main, ["dock", "status", "--store", store, "--verify", "--json"])
    assert r.exit_code == 0, r.output  # nothing to check it against
    DockHarness(tmp_path / "dock", agency_public_key=bytes(REAL.public_key)).close()
    r = CliRunner().invoke(main, ["dock", "status", "--store", store, "--verify", "--json"])
    assert r.exit_code == 1, r.output
    (rec,) = json.loads(r.output)["recordings"]
    assert rec["state"] == "failed" and "wrong_agency_key" in rec["detail"]


def test_a_raid_pins_the_agency_key_at_its_dock_and_verify_out_uses_out_agency(tmp_path):
    from capture.config import from_dict
    from simulator.raid import RaidPlan, run_raid
    from tests.conftest import SMALL

    out = tmp_path / "out"
    assert run_raid(from_dict(SMALL), out, RaidPlan(record_s=1.0)).ok
    s = json.loads((out / "summary.json").read_text())
    agency_key = out / s["keys"]["agency_private_key"]
    assert agency_key.parent == out / "agency"
    pinned = (out / s["dock"]["store"] / "agency.pub").read_text()
    assert pinned == (out / "agency" / "agency.pub").read_text()
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
    # another agency key in OUT/agency: every segment is sealed to a key that is not it
    write_secret_key(agency_key, bytes(SUBSTITUTE))
    r = CliRunner().invoke(main, ["verify", str(out), "--json"])
    assert r.exit_code == 1, r.output
    rep = json.loads(r.output)
    assert "wrong_agency_key" in {f["kind"] for f in rep["findings"]}
    (exhibit,) = rep["exhibits"].values()
    assert "wrong_agency_key" in {f["kind"] for f in exhibit["findings"]}
