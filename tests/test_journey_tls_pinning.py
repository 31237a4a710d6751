"""Issue 12, points 1 and 8: a camera talks to its dock over TLS 1.3 only, and only to the dock
whose key it pinned. A plain-HTTP dock, or a dock with another certificate, gets nothing from
it: not a request, not a token."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dock.client import DockClient, DockUnavailable, enroll
from dock.enroll import issue_token
from dock.server import ServerThread, create_app, open_dock
from dock.testing import DockHarness, OutboxDevice
from dock.tls import TLS_CERT_FILE, certificate_key, ensure_tls_files, pinned_to


def _now() -> int:
    return time.time_ns() // 1000


@pytest.fixture
def harness(tmp_path: Path):
    h = DockHarness(tmp_path / "dock")
    yield h
    h.close()


def test_the_dock_serves_its_own_key_as_an_ed25519_certificate_over_tls13(harness, tmp_path):
    cert = x509.load_pem_x509_certificate((harness.store_dir / TLS_CERT_FILE).read_bytes())
    assert isinstance(cert.public_key(), Ed25519PublicKey)
    assert certificate_key(cert.public_bytes(serialization.Encoding.DER)) == harness.public_key
    with harness.http() as http:
        r = http.get("/v1/dock")
        version = r.extensions["network_stream"].get_extra_info("ssl_object").version()
    assert r.json()["dock_public_key"] == harness.public_key.hex()
    assert version == "TLSv1.3"
    # a client that offers only TLS 1.2 gets no session
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(harness.url + "/v1/dock", verify=old)
    # and nothing answers in plain HTTP where cameras connect
    with pytest.raises(httpx.HTTPError):
        httpx.get(harness.url.replace("https://", "http://") + "/v1/dock", timeout=5)


def test_the_certificate_is_made_once_and_kept_across_restarts(harness):
    before = (harness.store_dir / TLS_CERT_FILE).read_bytes()
    harness.restart()
    assert (harness.store_dir / TLS_CERT_FILE).read_bytes() == before
    with harness.http() as http:
        assert http.get("/v1/dock").status_code == 200


def test_a_dock_with_another_key_gets_no_request_and_no_token(harness, tmp_path):
    """The camera pinned dock A; dock B (another key, its own valid certificate) answers at
    the address. The handshake fails before a byte is sent: B's token is not even used up."""
    other = DockHarness(tmp_path / "other")
    try:
        dev = OutboxDevice(tmp_path / "dev", "cam-pin-01")
        token_at_b = other.token(dev.device_id)
        with pytest.raises(DockUnavailable, match="pinned dock key"):
            enroll(
                other.url,
                dev.device_id,
                dev.identity,
                dev.public_key,
                token_at_b,
                wall_clock=_now,
                expected_dock_key=harness.public_key,
            )
        # B never saw it: the same token still enrols the camera at B, pinned to B
        got = enroll(
            other.url,
            dev.device_id,
            dev.identity,
            dev.public_key,
            token_at_b,
            wall_clock=_now,
            expected_dock_key=other.public_key,
        )
        assert got.dock_public_key == other.public_key
        # an enrolled camera pinned to A refuses B too, for every request
        creds = dev.credentials(harness.public_key)
        with DockClient(other.url, creds, wall_clock=_now) as client:
            with pytest.raises(DockUnavailable, match="pinned dock key"):
                client.sync_time()
            with pytest.raises(DockUnavailable, match="pinned dock key"):
                client.status()
    finally:
        other.close()


def test_a_plain_http_dock_is_refused_by_the_camera(tmp_path):
    """A dock (the real app, the real key) served without TLS: the camera sends it nothing,
    whether the URL says http:// or https://."""
    dock = open_dock(tmp_path / "plain")
    dev = OutboxDevice(tmp_path / "dev", "cam-plain-01")
    with ServerThread(create_app(dock)) as plain:
        assert plain.url.startswith("http://")
        token = issue_token(dock.store, _now(), device_id=dev.device_id)
        for url in (plain.url, plain.url.replace("http://", "https://")):
            with pytest.raises(DockUnavailable):
                enroll(
                    url,
                    dev.device_id,
                    dev.identity,
                    dev.public_key,
                    token.token,
                    wall_clock=_now,
                    expected_dock_key=dock.public_key,
                )
            with (
                DockClient(url, dev.credentials(dock.public_key), wall_clock=_now) as client,
                pytest.raises(DockUnavailable),
            ):
                client.status()
        assert dock.store.get_device(dev.device_id) is None  # nothing reached it
    dock.store.close()


def test_a_given_certificate_must_hold_the_dock_key(tmp_path):
    from nacl.signing import SigningKey

    from dock.keys import KeyFileError
    from dock.tls import make_certificate

    key = SigningKey.generate()
    foreign = tmp_path / "foreign.crt"
    foreign.write_bytes(make_certificate(SigningKey.generate()))
    with pytest.raises(KeyFileError, match="not for this dock's key"):
        ensure_tls_files(tmp_path / "store", key, foreign)
    mine = tmp_path / "mine.crt"
    mine.write_bytes(make_certificate(key))
    files = ensure_tls_files(tmp_path / "store2", key, mine)
    assert files.cert == mine
    ctx = pinned_to(bytes(key.verify_key))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3


def test_the_camera_reads_the_key_from_the_certificate_structure_not_its_bytes():
    """A certificate may carry another key's bytes in an extension: the key the camera
    compares with its pin is the one the certificate is for (the one the handshake proves)."""
    import datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    real, decoy = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    decoy_spki = decoy.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(real.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), decoy_spki),
            critical=False,
        )
        .sign(real, None)
    )
    raw = real.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert decoy_spki in der
    assert certificate_key(der) == raw
    assert certificate_key(cert.public_bytes(serialization.Encoding.PEM)) == raw
