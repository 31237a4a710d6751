"""Issue 17: the dock enrolls a key held in a TPM (P-256) only with its TPM's attestation,
vouched for by a TPM maker's CA it trusts; an Ed25519 key, held in a file, enrolls as ever.
The device record, the custody log's ``enrolled`` entry and the exhibit say where the key is
held. (The attestation checked end to end, against a software TPM: test_dock_enroll_tpm_swtpm.)
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from bwv.cli import main
from crypto.verify.exhibit import (
    DEVICE_PUB,
    ENROLLMENT,
    ExhibitError,
    device_key_from_enrollment,
    key_custody,
)
from dock.client import DockRefused, enroll
from dock.enroll_tpm import key_store_of
from dock.instance import open_dock
from dock.protocol import sign_request
from dock.store_sqlite import DirectoryStore
from dock.testing import DockHarness, OutboxDevice
from dock.tpm_trust import TpmCaError, save_tpm_cas, tpm_ca_paths, trusted_tpm_cas

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _now() -> int:
    return time.time_ns() // 1000


class P256Signer:
    """A software P-256 device key, signing as a TPM key does (r‖s, low-S)."""

    def __init__(self, seed: int) -> None:
        self._key = ec.derive_private_key(seed, ec.SECP256R1())
        self.public_key = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(message, ec.ECDSA(hashes.SHA256())))
        s = min(s, P256_N - s)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ca_pem(tmp: Path, name: str) -> tuple[Path, x509.Certificate]:
    """A self-signed CA certificate (a stand-in for a TPM maker's root), as a PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert


FAKE_ATTESTATION = {
    "ek_certificate": "30" * 8,
    "ak_public": "00" * 8,
    "key_public": "00" * 8,
    "activated_secret": "11" * 32,
    "certify_info": "ff544347" + "00" * 8,
    "certify_signature": "0018" + "00" * 8,
}


@pytest.fixture
def harness(tmp_path: Path):
    h = DockHarness(tmp_path / "dock")
    yield h
    h.close()


def _post_enrollment(
    harness: DockHarness,
    device_id: str,
    signer,
    public_key: bytes,
    attestation: dict | None = None,
):
    """An enrollment as a camera sends it (a fresh challenge, a token, signed by ``signer``)."""
    token = harness.token(device_id)
    with harness.http() as http:
        challenge = http.post("/v1/enroll/challenge").json()["challenge"]
        body = {
            "device_id": device_id,
            "public_key": public_key.hex(),
            "token": token,
            "challenge": challenge,
        }
        if attestation is not None:
            body["attestation"] = attestation
        raw = json.dumps(body).encode()
        signed = sign_request(signer, "POST", "/v1/enroll", raw, device_id, _now(), "a" * 32)
        return http.post(
            "/v1/enroll",
            content=raw,
            headers={**signed.as_dict(), "Content-Type": "application/json"},
        )


def test_an_ed25519_key_enrolls_as_a_key_held_in_a_file(harness, tmp_path):
    dev = OutboxDevice(tmp_path / "dev", "cam-file-01")
    got = enroll(
        harness.url,
        dev.device_id,
        dev.identity,
        dev.public_key,
        harness.token(dev.device_id),
        wall_clock=_now,
        expected_dock_key=harness.public_key,
    )
    assert (got.key_store, got.attested_by) == ("file", None)
    rec = harness.dock.store.get_device(dev.device_id)
    assert (rec.key_store, rec.attested_by) == ("file", None)
    (entry,) = [e for e in harness.dock.store.custody_log() if e.action == "enrolled"]
    assert entry.detail["key_store"] == "file" and entry.detail["attested_by"] is None
    # the device sees it in its own status too
    status = harness.client(dev.credentials(got.dock_public_key)).status()
    assert status["key_store"] == "file" and status["attested_by"] is None


def test_a_p256_key_without_an_attestation_is_refused(harness, tmp_path):
    ca, _ = ca_pem(tmp_path, "TPM Maker Root")
    harness.dock.tpm_cas = trusted_tpm_cas_of(ca)
    tpm_key = P256Signer(7)
    r = _post_enrollment(harness, "cam-tpm-01", tpm_key, tpm_key.public_key)
    assert r.status_code == 403 and r.json()["code"] == "attestation", r.text
    assert "only with its TPM's attestation" in r.json()["detail"]
    assert harness.dock.store.get_device("cam-tpm-01") is None
    # nor through the client, which sends what it is given: the refusal is the dock's words
    with pytest.raises(DockRefused) as caught:
        enroll(
            harness.url,
            "cam-tpm-01",
            tpm_key,
            tpm_key.public_key,
            harness.token("cam-tpm-01"),
            wall_clock=_now,
            expected_dock_key=harness.public_key,
        )
    assert caught.value.status == 403 and caught.value.code == "attestation"


def trusted_tpm_cas_of(*paths: Path):
    from dock.tpm_trust import load_cas

    return load_cas(paths)


def test_a_dock_that_trusts_no_tpm_ca_enrolls_no_tpm_key(harness):
    assert harness.dock.tpm_cas == ()
    tpm_key = P256Signer(8)
    r = _post_enrollment(harness, "cam-tpm-02", tpm_key, tpm_key.public_key, FAKE_ATTESTATION)
    assert r.status_code == 403 and r.json()["code"] == "attestation"
    assert "trusts no TPM maker's CA" in r.json()["detail"] and "--tpm-ca" in r.json()["detail"]
    assert harness.dock.store.get_device("cam-tpm-02") is None


def test_an_attestation_goes_only_with_a_p256_key(harness, tmp_path):
    ca, _ = ca_pem(tmp_path, "TPM Maker Root")
    harness.dock.tpm_cas = trusted_tpm_cas_of(ca)
    dev = OutboxDevice(tmp_path / "dev", "cam-file-02")
    r = _post_enrollment(harness, dev.device_id, dev.identity, dev.public_key, FAKE_ATTESTATION)
    assert r.status_code == 403 and r.json()["code"] == "attestation"
    assert "Ed25519" in r.json()["detail"]
    assert harness.dock.store.get_device(dev.device_id) is None


@pytest.mark.parametrize("public_key", ["05" + "11" * 64, "04" + "11" * 63, "11" * 33])
def test_a_key_of_neither_kind_is_refused_by_the_schema(harness, tmp_path, public_key):
    dev = OutboxDevice(tmp_path / "dev", "cam-odd-01")
    r = _post_enrollment(harness, dev.device_id, dev.identity, bytes.fromhex(public_key))
    assert r.status_code == 422, r.text
    assert harness.dock.store.get_device(dev.device_id) is None


def test_key_store_of_follows_from_the_key_length():
    assert key_store_of(b"\x01" * 32) == "file"
    assert key_store_of(b"\x04" + b"\x01" * 64) == "tpm"
    for bad in (b"\x05" + b"\x01" * 64, b"\x04" + b"\x01" * 32, b"", b"\x01" * 64):
        with pytest.raises(ValueError):
            key_store_of(bad)


def test_a_challenge_keeps_its_tpm_secret_for_one_use_only():
    from dock.enroll import CHALLENGE_TTL_S, Challenges, TpmChallenge

    c = Challenges()
    bound = TpmChallenge(b"s" * 32)
    value = c.issue(0, bound)
    assert "s" * 8 not in repr(bound)  # the secret is never in a repr (nor a log)
    taken = c.take(value, 1)
    assert taken is not None and taken.tpm == bound and taken.tpm.secret == b"s" * 32
    assert c.take(value, 2) is None
    plain = c.issue(0)
    assert c.take(plain, 1).tpm is None
    late = c.issue(0, bound)
    assert c.take(late, CHALLENGE_TTL_S * 1_000_000) is None


# -- the dock's trusted TPM CAs -----------------------------------------------------------------


def test_init_names_the_tpm_cas_in_dock_toml_and_the_dock_trusts_them(tmp_path):
    a, ca_a = ca_pem(tmp_path, "Maker A Root")
    b, ca_b = ca_pem(tmp_path, "Maker B Root")
    store = tmp_path / "store"
    r = CliRunner().invoke(
        main, ["dock", "init", "--store", str(store), "--tpm-ca", str(a), "--tpm-ca", str(b)]
    )
    assert r.exit_code == 0, r.output
    assert "CN=Maker A Root; CN=Maker B Root" in r.output
    assert tpm_ca_paths(store) == [a.resolve(), b.resolve()]
    dock = open_dock(store)
    try:
        assert dock.tpm_cas == (ca_a, ca_b)
    finally:
        dock.store.close()
    # init again without --tpm-ca: the list stays; with one: it replaces the list
    r = CliRunner().invoke(main, ["dock", "init", "--store", str(store)])
    assert r.exit_code == 0 and "Maker B Root" in r.output
    r = CliRunner().invoke(main, ["dock", "init", "--store", str(store), "--tpm-ca", str(b)])
    assert r.exit_code == 0 and "Maker A Root" not in r.output
    assert trusted_tpm_cas(store) == (ca_b,)


def test_a_dock_without_tpm_cas_says_it_enrolls_no_tpm_key(tmp_path):
    r = CliRunner().invoke(main, ["dock", "init", "--store", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert "TPM keys from:   none (TPM keys are not enrolled)" in r.output
    assert not (tmp_path / "s" / "dock.toml").exists()  # the embedded store: no file


def test_a_tpm_ca_that_is_not_a_certificate_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello\n")
    r = CliRunner().invoke(
        main, ["dock", "init", "--store", str(tmp_path / "s"), "--tpm-ca", str(bad)]
    )
    assert r.exit_code == 2, r.output
    assert "holds no PEM certificate" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "s").exists()  # refused before anything was made


def test_a_tpm_ca_file_gone_later_stops_the_dock_with_a_reason(tmp_path):
    a, _ = ca_pem(tmp_path, "Maker A Root")
    store = tmp_path / "store"
    r = CliRunner().invoke(main, ["dock", "init", "--store", str(store), "--tpm-ca", str(a)])
    assert r.exit_code == 0, r.output
    a.unlink()
    r = CliRunner().invoke(main, ["dock", "init", "--store", str(store)])
    assert r.exit_code == 2 and "cannot read it" in r.output and str(a) in r.output
    with pytest.raises(TpmCaError):
        trusted_tpm_cas(store)


def test_tpm_cas_and_shared_backends_share_dock_toml(tmp_path):
    from dock.backends import Backends, bind_backends, load_backends

    a, ca_a = ca_pem(tmp_path, "Maker A Root")
    store = tmp_path / "state"
    store.mkdir()
    save_tpm_cas(store, [a])
    shared = Backends("s3://bucket/x", "postgresql://bwv@db.example/bwv")
    assert bind_backends(store, shared) == shared  # a folder with only tpm_ca may bind
    assert load_backends(store) == shared and trusted_tpm_cas(store) == (ca_a,)
    b, ca_b = ca_pem(tmp_path, "Maker B Root")
    save_tpm_cas(store, [b])  # replacing the CAs keeps the backends
    assert load_backends(store) == shared and trusted_tpm_cas(store) == (ca_b,)
    assert (store / "dock.toml").stat().st_mode & 0o777 == 0o600


# -- the index: devices enrolled before TPM keys ---------------------------------------------


def test_devices_enrolled_before_the_migration_hold_their_key_in_a_file(tmp_path):
    from nacl.signing import SigningKey

    from dock.enroll import issue_token, token_hash

    root = tmp_path / "store"
    store = DirectoryStore(root, SigningKey.generate())
    dev = OutboxDevice(tmp_path / "dev", "cam-old-01")
    tok = issue_token(store, 1, device_id=dev.device_id).token
    store.enroll(dev.device_id, dev.public_key, token_hash(tok), 2)
    store.close()
    with sqlite3.connect(root / "index.sqlite3") as db:  # as a dock before issue 17 left it
        db.execute("ALTER TABLE devices DROP COLUMN attested_by")
        db.execute("ALTER TABLE devices DROP COLUMN key_store")
        db.execute("DELETE FROM schema_migrations WHERE name='key_store'")
    store = DirectoryStore(root, SigningKey.generate())
    try:
        rec = store.get_device(dev.device_id)
        assert (rec.key_store, rec.attested_by) == ("file", None)
    finally:
        store.close()


# -- exhibits ----------------------------------------------------------------------------------


def test_an_exhibit_says_where_the_key_is_held():
    tpm = {"action": "enrolled", "detail": {"key_store": "tpm", "attested_by": "CN=Maker"}}
    assert key_custody(tpm) == "key held in a TPM, attested by CN=Maker"
    assert key_custody({"detail": {"key_store": "file", "attested_by": None}}) == (
        "key held in a file"
    )
    assert key_custody({"detail": {"key_id": "ab"}}) == "key held in a file"  # before issue 17


def test_an_exhibit_of_a_tpm_key_finds_the_device_key_from_the_dock_key(tmp_path):
    """``bwv verify EXHIBIT --dock-pub``: the enrollment entry the dock signed names the
    65-byte P-256 key as it does a 32-byte one."""
    from nacl.signing import SigningKey

    from dock.enroll import issue_token, token_hash

    key = SigningKey.generate()
    store = DirectoryStore(tmp_path / "store", key)
    tpm_key = P256Signer(9)
    try:
        tok = issue_token(store, 1, device_id="cam-tpm-09").token
        store.enroll(
            "cam-tpm-09",
            tpm_key.public_key,
            token_hash(tok),
            2,
            key_store="tpm",
            attested_by="CN=Maker",
        )
        (entry,) = [e for e in store.custody_log() if e.action == "enrolled"]
    finally:
        store.close()
    from dataclasses import asdict

    files = {
        ENROLLMENT: json.dumps(asdict(entry)).encode(),
        DEVICE_PUB: tpm_key.public_key.hex().encode() + b"\n",
    }
    assert device_key_from_enrollment(files, bytes(key.verify_key)) == tpm_key.public_key
    assert key_custody(json.loads(files[ENROLLMENT])).endswith("attested by CN=Maker")
    files[DEVICE_PUB] = P256Signer(10).public_key.hex().encode()
    with pytest.raises(ExhibitError, match="not the key the dock enrolled"):
        device_key_from_enrollment(files, bytes(key.verify_key))
    files[DEVICE_PUB] = b"05" + b"11" * 64
    with pytest.raises(ExhibitError, match="not a device key"):
        device_key_from_enrollment(files, bytes(key.verify_key))


def test_a_challenge_for_a_tpm_that_cannot_be_read_is_refused(harness, tmp_path):
    _, ca = ca_pem(tmp_path, "Not An EK")
    not_ek = ca.public_bytes(serialization.Encoding.DER).hex()  # a P-256 key, not an RSA EK
    with harness.http() as http:
        for tpm, status, says in (
            ({"ek_certificate": "30" * 8, "ak_public": "00" * 8}, 403, "cannot be read"),
            ({"ek_certificate": not_ek, "ak_public": "00" * 8}, 403, "not an RSA 2048 key"),
            ({"ek_certificate": "zz", "ak_public": "00"}, 422, ""),
            ({"ek_certificate": "30"}, 422, ""),
        ):
            r = http.post("/v1/enroll/challenge", json={"tpm": tpm})
            assert r.status_code == status, r.text
            if status == 403:
                assert r.json()["code"] == "attestation" and says in r.json()["detail"]
        # asked without a TPM, as ever: no credential in the answer
        plain = http.post("/v1/enroll/challenge").json()
        assert set(plain) == {"challenge", "expires_in_s"}
