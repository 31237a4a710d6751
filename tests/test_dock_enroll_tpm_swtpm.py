"""Issue 17, end to end on a real (software) TPM: a camera whose key is held in the TPM
enrolls at a dock that trusts the TPM maker's CA (swtpm's local CA here), through
``dock.client.enroll`` with ``tpm.attest.TpmAttestor``; the dock records the key as held in a
TPM, attested by that CA, and takes the camera's signed requests. A dock that trusts another
maker refuses it, and an attestation made for one challenge is worth nothing for another."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dock.client import DeviceCredentials, DockClient, DockRefused, enroll
from dock.protocol import sign_request, verify_detached
from dock.testing import DockHarness
from dock.tpm_trust import save_tpm_cas

swtpm = pytest.importorskip("tests.swtpm", reason="tests/swtpm.py (the tpm room's fixture)")
swtpm_server = swtpm.swtpm_server  # the fixture: a swtpm with its own local CA


def _p256_requests() -> bool:
    """Whether the dock takes requests signed by a P-256 key (crypto.suites, issue 17)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(key.sign(b"m", ec.ECDSA(hashes.SHA256())))
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    sig = r.to_bytes(32, "big") + min(s, n - s).to_bytes(32, "big")
    return verify_detached(pub, b"m", sig)


pytestmark = pytest.mark.skipif(
    not _p256_requests(),
    reason="dock.protocol.verify_detached does not take P-256 signatures yet (crypto.suites)",
)


def _now() -> int:
    return time.time_ns() // 1000


@pytest.fixture(scope="module")
def tpm(swtpm_server):
    from tpm.signer import create_device_key

    with swtpm_server.open() as esapi:
        create_device_key(esapi)
    return swtpm_server


@pytest.fixture
def signer(tpm) -> Iterator[object]:
    from tpm.signer import load_signer

    with load_signer("cam-tpm-e2e", tpm.tcti) as s:
        yield s


def _harness(tmp_path: Path, *cas: Path) -> DockHarness:
    store = tmp_path / "dock"
    store.mkdir()
    save_tpm_cas(store, cas)  # as `bwv dock serve --tpm-ca ROOT --tpm-ca ISSUER` names them
    return DockHarness(store)


def _other_maker(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Another TPM Maker Root")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "other-maker.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_key_held_in_a_trusted_tpm_enrolls_and_signs_its_requests(tpm, signer, tmp_path):
    from tpm.attest import TpmAttestor

    harness = _harness(tmp_path, tpm.ca_root, tpm.ca_issuer)
    root, _issuer = tpm.cas()
    try:
        got = enroll(
            harness.url,
            signer.device_id,
            signer,
            signer.public_key,
            harness.token(signer.device_id),
            wall_clock=_now,
            expected_dock_key=harness.public_key,
            attestor=TpmAttestor(tpm.tcti),
        )
        assert got.key_store == "tpm" and got.attested_by == root.subject.rfc4514_string()
        rec = harness.dock.store.get_device(signer.device_id)
        assert rec.public_key == signer.public_key and len(rec.public_key) == 65
        assert (rec.key_store, rec.attested_by) == ("tpm", got.attested_by)
        (entry,) = [e for e in harness.dock.store.custody_log() if e.action == "enrolled"]
        assert entry.detail["key_store"] == "tpm"
        assert entry.detail["attested_by"] == got.attested_by
        # the key the TPM holds signs the camera's requests from now on
        creds = DeviceCredentials(signer.device_id, signer, got.dock_public_key)
        status = DockClient(harness.url, creds, wall_clock=_now).status()
        assert status["key_store"] == "tpm" and status["attested_by"] == got.attested_by
    finally:
        harness.close()


def test_a_dock_that_trusts_another_tpm_maker_refuses_the_key(tpm, signer, tmp_path):
    from tpm.attest import TpmAttestor

    harness = _harness(tmp_path, _other_maker(tmp_path))
    try:
        with pytest.raises(DockRefused) as refused:
            enroll(
                harness.url,
                signer.device_id,
                signer,
                signer.public_key,
                harness.token(signer.device_id),
                wall_clock=_now,
                expected_dock_key=harness.public_key,
                attestor=TpmAttestor(tpm.tcti),
            )
        assert refused.value.status == 403 and refused.value.code == "attestation"
        assert "does not chain to a CA this dock trusts" in refused.value.detail
        assert harness.dock.store.get_device(signer.device_id) is None
    finally:
        harness.close()


def test_an_attestation_made_for_one_challenge_is_refused_with_another(tpm, signer, tmp_path):
    """Someone who saw an enrollment's attestation (or the camera, replaying it) cannot use
    it again: each challenge has its own credential, and the certification is over it."""
    from tpm.attest import TpmAttestor

    harness = _harness(tmp_path, tpm.ca_root, tpm.ca_issuer)
    attestor = TpmAttestor(tpm.tcti)
    try:
        with harness.http() as http:
            first = http.post("/v1/enroll/challenge", json={"tpm": attestor.begin()}).json()
            seen = attestor.finish(first["tpm"], first["challenge"])
            second = http.post(
                "/v1/enroll/challenge",
                json={"tpm": {k: seen[k] for k in ("ek_certificate", "ak_public")}},
            ).json()
            plain = http.post("/v1/enroll/challenge").json()
            answers = [
                _enroll_with(http, signer, harness, challenge, seen)
                for challenge in (second["challenge"], plain["challenge"])
            ]
        (again, unasked) = answers
        assert again.status_code == 403 and again.json()["code"] == "attestation", again.text
        assert "did not recover the dock's credential" in again.json()["detail"]
        assert unasked.status_code == 403 and "not asked for" in unasked.json()["detail"]
        assert harness.dock.store.get_device(signer.device_id) is None
    finally:
        harness.close()


def _enroll_with(http, signer, harness: DockHarness, challenge: str, attestation: dict):
    body = json.dumps(
        {
            "device_id": signer.device_id,
            "public_key": signer.public_key.hex(),
            "token": harness.token(signer.device_id),
            "challenge": challenge,
            "attestation": attestation,
        }
    ).encode()
    signed = sign_request(
        signer, "POST", "/v1/enroll", body, signer.device_id, _now(), challenge[:32]
    )
    return http.post(
        "/v1/enroll", content=body, headers={**signed.as_dict(), "Content-Type": "application/json"}
    )
