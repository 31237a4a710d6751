"""The TPM-suite vectors (tests/vectors/tpm/, EXPECTED.md there): a recording signed by a
P-256 key (``ecdsa-p256-sha256``, a software stand-in for a TPM's key) with a hardware
counter, and chain records altered by hand: a counter gap (storage rolled back), a counter
reused, a high-S signature, a record claiming the wrong suite. The verifier is checked
against the hand-written verdicts in ``expected_verdicts.json``.

The outbox is stored (sealing is randomised). To make it again:
``BWV_REGEN_VECTORS=1 .venv/bin/pytest tests/test_crypto_suites_vectors.py``; the altered
records are made from it by ``tests/vectors/tpm/make_tpm_vectors.py`` (byte for byte).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey

from crypto.identity import key_id_of, load_device_public_key
from crypto.records import RecordError, verify_line
from crypto.suites import ECDSA_P256, rs_to_der
from crypto.testing import SoftCounter, SoftP256Signer, make_sink, seed, write_recording
from crypto.verify import main, read_outbox, verify, verify_outbox

TPM = Path(__file__).parent / "vectors" / "tpm"
DEVICE_ID = "bwv-vector-tpm-01"
RECORDING_ID = "0123456789abcdef0123456789abcdef"
HAND_WRITTEN = ("EXPECTED.md", "expected_verdicts.json", "make_tpm_vectors.py")
COUNTER_BEFORE = 41  # the TPM counter's value before the recording: the first record has 42
END = "chain/000000000002.end.json"


def _regenerate(tmp: Path) -> None:
    secret = seed("vector tpm device")
    agency = PrivateKey(seed("vector agency"))  # the recording vector's agency key
    dev = SoftP256Signer(DEVICE_ID, secret)
    keep = {n: (TPM / n).read_bytes() for n in HAND_WRITTEN if (TPM / n).exists()}
    shutil.rmtree(TPM, ignore_errors=True)
    TPM.mkdir(parents=True)
    for n, data in keep.items():
        (TPM / n).write_bytes(data)
    sink = make_sink(tmp, dev, agency, firmware="bwv-vector", counter=SoftCounter(COUNTER_BEFORE))
    write_recording(sink, RECORDING_ID, segments=2, fragments=1, size=96)
    sink.close()
    shutil.copytree(tmp / "outbox", TPM / "outbox")
    keys = {
        "comment": "TEST KEYS ONLY. device_secret_hex is the seed crypto.testing."
        "SoftP256Signer derives the P-256 key from; device_private_scalar_hex is that key's "
        "private scalar d (32 bytes, big-endian); agency_secret_hex the X25519 secret (the "
        "recording vector's). All are derived from fixed labels.",
        "device_id": DEVICE_ID,
        "suite": ECDSA_P256,
        "device_secret_hex": secret.hex(),
        "device_private_scalar_hex": dev.secret_scalar_for_vectors().to_bytes(32, "big").hex(),
        "device_public_hex": dev.public_key.hex(),
        "key_id": dev.key_id,
        "counter_before": COUNTER_BEFORE,
        "agency_secret_hex": bytes(agency).hex(),
        "agency_public_hex": bytes(agency.public_key).hex(),
    }
    (TPM / "keys.json").write_text(json.dumps(keys, indent=2) + "\n")
    (TPM / "device.pub").write_text(dev.public_key.hex() + "\n")
    report = verify_outbox(TPM / "outbox", dev.public_key, agency)
    (TPM / "expected_report.json").write_text(
        json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
    )
    subprocess.run([sys.executable, str(TPM / "make_tpm_vectors.py")], check=True)


@pytest.fixture(scope="module", autouse=True)
def vectors(tmp_path_factory):
    if os.environ.get("BWV_REGEN_VECTORS") == "1":
        _regenerate(tmp_path_factory.mktemp("tpm-vectors"))


def _expected() -> dict[str, Any]:
    return json.loads((TPM / "expected_verdicts.json").read_text())


def _keys() -> tuple[SoftP256Signer, PrivateKey]:
    k = json.loads((TPM / "keys.json").read_text())
    dev = SoftP256Signer(k["device_id"], bytes.fromhex(k["device_secret_hex"]))
    return dev, PrivateKey(bytes.fromhex(k["agency_secret_hex"]))


def _changed(changes: list[dict[str, str]]) -> dict[str, bytes]:
    files = read_outbox(TPM / "outbox")
    for ch in changes:
        assert ch["replace"] in files, ch
        files[ch["replace"]] = (TPM / ch["with"]).read_bytes()
    return files


def _verdicts(rep: dict[str, Any]) -> dict[str, Any]:
    (recording,) = rep["recordings"]
    return {
        "ok": rep["ok"],
        "suite": rep["suite"],
        "finding_kinds": sorted(f["kind"] for f in rep["findings"]),
        "counter_findings": [
            {k: f[k] for k in ("kind", "seq", "counter", "prev_seq", "prev_counter")}
            for f in rep["findings"]
            if f["kind"].startswith("counter_")
        ],
        "recording": {k: recording[k] for k in ("status", "end_reason", "segments")},
        "segments": [
            {
                "index": s["segment_index"],
                "status": s["status"],
                "decrypted": s["decrypted"],
                "chunks": [[c["kind"], c["status"]] for c in s["chunks"]],
            }
            for s in rep["segments"]
        ],
    }


VECTORS = _expected()["vectors"]


def test_the_tpm_vectors_are_small():
    assert sum(p.stat().st_size for p in TPM.rglob("*") if p.is_file()) < 40_000


def test_the_key_is_the_one_the_files_name():
    dev, _ = _keys()
    k = json.loads((TPM / "keys.json").read_text())
    assert load_device_public_key(TPM / "device.pub") == dev.public_key
    assert len(dev.public_key) == 65 and dev.public_key.hex() == k["device_public_hex"]
    assert dev.key_id == key_id_of(dev.public_key) == k["key_id"]
    assert dev.secret_scalar_for_vectors() == int(k["device_private_scalar_hex"], 16)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_report_matches_the_hand_written_verdicts(vector: dict[str, Any]) -> None:
    dev, agency = _keys()
    rep = verify(_changed(vector["change"]), dev.public_key, agency).to_json()
    want = {k: vector[k] for k in _verdicts(rep)}
    assert _verdicts(rep) == want


def test_the_stored_outbox_verifies_to_its_expected_report():
    dev, agency = _keys()
    report = verify_outbox(TPM / "outbox", dev.public_key, agency)
    assert report.ok and report.suite == ECDSA_P256
    assert report.to_json() == json.loads((TPM / "expected_report.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_the_command_line_exit_code(vector: dict[str, Any], tmp_path, capsys) -> None:
    out = tmp_path / "outbox"
    for name, data in _changed(vector["change"]).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    code = main([str(out), "--device-pub", str(TPM / "device.pub")])
    assert code == (0 if vector["ok"] else 1)
    assert json.loads(capsys.readouterr().out)["suite"] == ECDSA_P256


def test_the_high_s_record_is_a_valid_plain_ecdsa_signature_refused_as_malleable():
    """The malleated record verifies under textbook ECDSA: only the low-S rule refuses it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from crypto import canonical
    from crypto.records import domain
    from crypto.suites import p256_public_key

    dev, _ = _keys()
    line = (TPM / "changed" / "high_s.end.json").read_bytes()
    env = json.loads(line)
    message = domain("end") + canonical.encode(env["record"])
    der = rs_to_der(bytes.fromhex(env["sig"]))
    p256_public_key(dev.public_key).verify(der, message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(RecordError) as e:
        verify_line(line, dev.public_key)
    assert e.value.reason == "bad_signature"
    assert env["record"] == json.loads((TPM / "outbox" / END).read_bytes())["record"]


def test_the_changed_records_are_made_again_byte_for_byte(tmp_path) -> None:
    copy = tmp_path / "tpm"
    shutil.copytree(TPM, copy, ignore=shutil.ignore_patterns("changed", "__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, str(copy / "make_tpm_vectors.py")], check=True, env=env)
    made = sorted(p.name for p in (copy / "changed").iterdir())
    assert made == sorted(p.name for p in (TPM / "changed").iterdir())
    for name in made:
        assert (copy / "changed" / name).read_bytes() == (TPM / "changed" / name).read_bytes()
