"""Test vectors for verifiers in other languages (tests/vectors/, described in
crypto/FORMAT.md): a small signed recording with its keys and its expected report, and
canonical-encoding and signature examples.

The files are stored, not made at test time (secretstream and sealed boxes are randomised).
To make them again: ``BWV_REGEN_VECTORS=1 .venv/bin/pytest tests/test_crypto_vectors.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from crypto import canonical
from crypto.identity import DeviceIdentity, key_id_of, load_public_key
from crypto.records import domain, sign_record, verify_line
from crypto.seal import decrypt_segment
from crypto.testing import WALL0, S, Written, make_sink, seed, write_recording, write_segment
from crypto.verify import check_chain_record, main, read_outbox, verify, verify_outbox

VECTORS = Path(__file__).parent / "vectors"
REC = VECTORS / "recording"
DEVICE_ID = "bwv-vector-01"
RECORDING_ID = "0123456789abcdef0123456789abcdef"
HAND_WRITTEN = ("EXPECTED.md", "expected_verdicts.json")  # test_crypto_vectors_expected.py
TIME_SCRIPT = "make_time_vectors.py"  # the time vectors, made from outbox/ (kept, then run)
WRONG_AGENCY = "outbox_wrong_agency_key"  # segment 1 sealed to a substitute agency key


def _keys() -> tuple[DeviceIdentity, PrivateKey]:
    keys = json.loads((REC / "keys.json").read_text())
    ident = DeviceIdentity.from_seed(keys["device_id"], bytes.fromhex(keys["device_seed_hex"]))
    return ident, PrivateKey(bytes.fromhex(keys["agency_secret_hex"]))


def _end_record(ident: DeviceIdentity) -> dict:
    return {
        "type": "end",
        "v": 4,
        "suite": "ed25519",
        "device_id": ident.device_id,
        "key_id": ident.key_id,
        "seq": 0,
        "prev_sha256": None,
        "firmware_version": "bwv-vector",
        "recording_id": RECORDING_ID,
        "reason": "stopped",
        "end_us": 14 * S,
        "segment_count": 2,
        "recovered": False,
        "counter": None,
    }


CANONICAL_CASES = [
    ('{ "b": 1, "a": [true, false, null] }', '{"a":[true,false,null],"b":1}'),
    ('{"z": {"y": -0, "x": 9007199254740991}}', '{"z":{"x":9007199254740991,"y":0}}'),
    (
        '"tab\\tnl\\nquote\\"back\\\\ctl\\u0001del\\u007f"',
        '"tab\\tnl\\nquote\\"back\\\\ctl\\u0001del\u007f"',
    ),
    ('"\\u00e9\\u20ac\\ud83d\\ude00"', '"é€😀"'),
    ('{"\\uffff": 1, "\\ud83d\\ude00": 2}', '{"😀":2,"\uffff":1}'),
]
INVALID = [
    '{"a": 1}',
    '{"b":1,"a":2}',
    '{"a":1,"a":1}',
    '"\\u0041"',
    "1.0",
    "1e3",
    "-0",
    "9007199254740992",
    "NaN",
]


def regenerate(tmp: Path) -> None:
    device_seed = seed("vector device")
    agency = PrivateKey(seed("vector agency"))
    ident = DeviceIdentity.from_seed(DEVICE_ID, device_seed)
    # the hand-written verdicts are not made here: kept as they are
    keep = {n: (REC / n).read_bytes() for n in (*HAND_WRITTEN, TIME_SCRIPT) if (REC / n).exists()}
    shutil.rmtree(REC, ignore_errors=True)
    REC.mkdir(parents=True)
    for n, data in keep.items():
        (REC / n).write_bytes(data)
    sink = make_sink(tmp, ident, agency, firmware="bwv-vector")
    written = write_recording(sink, RECORDING_ID, segments=2, fragments=2, size=96)
    sink.close()
    shutil.copytree(tmp / "outbox", REC / "outbox")
    substitute = PrivateKey(seed("vector substitute agency"))
    dock = SigningKey(seed("vector dock"))
    _wrong_agency_outbox(tmp / "swap", ident, agency, substitute)
    (REC / "keys.json").write_text(
        json.dumps(
            {
                "comment": "TEST KEYS ONLY. device_seed_hex is the Ed25519 seed, agency_secret_hex "
                "the X25519 secret, dock_seed_hex the Ed25519 seed of the dock that signs the "
                "time answer in outbox_time_sync_after_start; all are derived from fixed labels.",
                "device_id": DEVICE_ID,
                "device_seed_hex": device_seed.hex(),
                "device_public_hex": ident.public_key.hex(),
                "key_id": ident.key_id,
                "agency_secret_hex": bytes(agency).hex(),
                "agency_public_hex": bytes(agency.public_key).hex(),
                "substitute_agency_public_hex": bytes(substitute.public_key).hex(),
                "dock_seed_hex": bytes(dock).hex(),
                "dock_public_hex": dock.verify_key.encode().hex(),
            },
            indent=2,
        )
        + "\n"
    )
    (REC / "device.pub").write_text(ident.public_key.hex() + "\n")
    (REC / "dock.pub").write_text(dock.verify_key.encode().hex() + "\n")
    (REC / "blobs.json").write_text(
        json.dumps(
            {
                f"segments/{p.name}": [b.hex() for b in written.blobs[i]]
                for i, p in written.paths.items()
            },
            indent=2,
        )
        + "\n"
    )
    report = verify_outbox(REC / "outbox", ident.public_key, agency)
    (REC / "expected_report.json").write_text(
        json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
    )
    signed = sign_record(ident, _end_record(ident))
    subprocess.run([sys.executable, str(REC / TIME_SCRIPT)], check=True)
    (VECTORS / "canonical.json").write_text(
        json.dumps(
            {
                "canonical": [{"input": i, "canonical": c} for i, c in CANONICAL_CASES],
                "invalid": INVALID,
                "signed_record": {
                    "device_seed_hex": device_seed.hex(),
                    "public_key_hex": ident.public_key.hex(),
                    "key_id": ident.key_id,
                    "record": _end_record(ident),
                    "signed_message_hex": (
                        domain("end") + canonical.encode(_end_record(ident))
                    ).hex(),
                    "line": signed.line.decode(),
                    "line_sha256": signed.sha256,
                },
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


def _wrong_agency_outbox(
    tmp: Path, ident: DeviceIdentity, agency: PrivateKey, substitute: PrivateKey
) -> None:
    """The same recording, the device sealing segment 1 to ``substitute`` (a swapped
    agency.pub): every record is validly signed by the device."""
    sink = make_sink(tmp, ident, agency, firmware="bwv-vector")
    written = Written(RECORDING_ID)
    for i in range(2):
        sink.agency_pk = (substitute if i == 1 else agency).public_key
        write_segment(sink, written, i, fragments=2, size=96)
    sink.end_recording(RECORDING_ID, "stopped", 10 * S + 4 * S)
    sink.close()
    shutil.copytree(tmp / "outbox", REC / WRONG_AGENCY)


@pytest.fixture(scope="module", autouse=True)
def vectors(tmp_path_factory):
    if os.environ.get("BWV_REGEN_VECTORS") == "1":
        regenerate(tmp_path_factory.mktemp("vectors"))


def test_vectors_are_small():
    exhibit = VECTORS / "exhibit"  # its own budget: tests/test_journey_exhibit_vectors.py
    tpm = VECTORS / "tpm"  # its own budget: tests/test_crypto_suites_vectors.py
    total = sum(
        p.stat().st_size
        for p in VECTORS.rglob("*")
        if p.is_file() and not (p.is_relative_to(exhibit) or p.is_relative_to(tpm))
    )
    assert total < 100_000


def test_recording_verifies_to_the_expected_report():
    ident, agency = _keys()
    assert load_public_key(REC / "device.pub") == ident.public_key
    assert ident.key_id == key_id_of(ident.public_key)
    report = verify_outbox(REC / "outbox", ident.public_key, agency)
    expected = json.loads((REC / "expected_report.json").read_text())
    assert report.to_json() == expected
    assert report.ok and expected["ok"] is True
    # without the agency key everything but the plaintext is still checked
    assert verify_outbox(REC / "outbox", ident.public_key).ok


def test_recording_decrypts_to_the_stored_blobs():
    _, agency = _keys()
    blobs = json.loads((REC / "blobs.json").read_text())
    assert len(blobs) == 2
    for name, hexes in blobs.items():
        d = decrypt_segment((REC / "outbox" / name).read_bytes(), agency)
        assert d.final and d.error is None
        assert d.blobs == [bytes.fromhex(h) for h in hexes]


def test_a_flipped_vector_byte_is_reported():
    ident, agency = _keys()
    files = read_outbox(REC / "outbox")
    name = "segments/" + RECORDING_ID + "_0001.bwvseg"
    b = bytearray(files[name])
    b[-30] ^= 1
    files[name] = bytes(b)
    rep = verify(files, ident.public_key, agency)
    assert not rep.ok
    seg = next(s for s in rep.segments if s.segment_index == 1)
    assert seg.status == "altered" and [c.status for c in seg.chunks].count("altered") == 1


def test_canonical_and_signature_vectors():
    v = json.loads((VECTORS / "canonical.json").read_text())
    for case in v["canonical"]:
        value = json.loads(case["input"])
        assert canonical.encode(value) == case["canonical"].encode()
        assert canonical.decode(case["canonical"].encode()) == value
    for bad in v["invalid"]:
        with pytest.raises(canonical.CanonicalError):
            canonical.decode(bad.encode())
    s = v["signed_record"]
    ident = DeviceIdentity.from_seed("x", bytes.fromhex(s["device_seed_hex"]))
    assert ident.public_key.hex() == s["public_key_hex"] and ident.key_id == s["key_id"]
    line = s["line"].encode()
    rec = verify_line(line, ident.public_key)
    assert rec.record == s["record"] and rec.sha256 == s["line_sha256"]
    sig = bytes.fromhex(json.loads(line)["sig"])
    ident.verify_key().verify(bytes.fromhex(s["signed_message_hex"]), sig)
    assert WALL0 > 0


def test_records_checked_one_by_one_as_a_dock_would():
    ident, _ = _keys()
    chain = sorted((REC / "outbox" / "chain").iterdir())
    prev = None
    for path in chain:
        rec = json.loads(path.read_bytes())["record"]
        stored = None
        if rec["type"] == "manifest":
            stored = (REC / "outbox" / "segments" / rec["file"]).open("rb")
        check = check_chain_record(path.read_bytes(), ident.public_key, prev, stored)
        if stored is not None:
            stored.close()
        assert check.ok and not check.gap, check.problems
        prev = check.sha256
    first = chain[0].read_bytes()
    seg0 = (REC / "outbox" / "segments" / f"{RECORDING_ID}_0000.bwvseg").read_bytes()
    assert not check_chain_record(first, ident.public_key, None, seg0[:-1]).ok
    assert not check_chain_record(first, ident.public_key, "0" * 64, seg0).ok
    assert check_chain_record(chain[1].read_bytes(), ident.public_key, None, b"").gap
    assert not check_chain_record(first, b"\x01" * 32, None, seg0).ok


def test_command_line(capsys):
    args = [str(REC / "outbox"), "--device-pub", str(REC / "device.pub")]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main([str(REC / "outbox"), "--device-pub", str(REC / "keys.json")]) == 2
