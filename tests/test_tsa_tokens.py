"""RFC 3161 tokens from bwv's own TSA (openssl ts -reply on loopback, no mock): what the
client accepts and what verify_token accepts, each refusal with its own reason."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from tsa import der
from tsa.authority import Authority
from tsa.client import TsaClient, TsaError, token_from_reply
from tsa.init import init_state
from tsa.testing import running_tsa
from tsa.verify import TokenError, tst_info_der, verify_token

DIGEST = hashlib.sha256(b"a checkpoint body").digest()


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory):
    with running_tsa(tmp_path_factory.mktemp("tsa")) as served:
        yield served


def now_us() -> int:
    return time.time_ns() // 1000


def test_a_token_verifies_and_carries_the_tsas_time(tsa) -> None:
    url, ca_pem = tsa
    before = now_us()
    token = TsaClient(url).timestamp(DIGEST)
    after = now_us()
    gen = verify_token(token, DIGEST, ca_pem)
    # the TSA's clock is this machine's: its time lies within the request, to the microsecond
    assert before <= gen <= after


def test_a_token_for_another_digest_is_refused(tsa) -> None:
    url, ca_pem = tsa
    token = TsaClient(url).timestamp(DIGEST)
    with pytest.raises(TokenError) as caught:
        verify_token(token, hashlib.sha256(b"another body").digest(), ca_pem)
    assert caught.value.reason == "wrong_digest"
    assert "another digest" in str(caught.value)


def test_a_token_under_another_ca_is_refused(tsa, tmp_path: Path) -> None:
    url, ca_pem = tsa
    with running_tsa(tmp_path, "other") as (other_url, other_ca):
        foreign = TsaClient(other_url).timestamp(DIGEST)
        assert verify_token(foreign, DIGEST, other_ca) > 0
    with pytest.raises(TokenError) as caught:
        verify_token(foreign, DIGEST, ca_pem)
    assert caught.value.reason == "untrusted"
    assert "not issued by the given CA" in str(caught.value)


def test_a_tampered_token_is_refused(tsa) -> None:
    """One digit of genTime's fraction changed: the token still parses, the time is still
    plausible, but the signature no longer covers it."""
    url, ca_pem = tsa
    token = TsaClient(url).timestamp(DIGEST)
    info = tst_info_der(token)
    m = re.search(rb"\x18.\d{14}\.(\d+)Z", info)
    assert m is not None
    at = token.index(info) + m.start(1)
    digit = token[at : at + 1]
    tampered = token[:at] + (b"2" if digit == b"1" else b"1") + token[at + 1 :]
    with pytest.raises(TokenError) as caught:
        verify_token(tampered, DIGEST, ca_pem)
    assert caught.value.reason == "bad_signature"


def test_bytes_that_are_no_token_are_refused(tsa) -> None:
    _, ca_pem = tsa
    for junk in (b"", b"\x30\x03\x02\x01\x00", b"not a token at all"):
        with pytest.raises(TokenError) as caught:
            verify_token(junk, DIGEST, ca_pem)
        assert caught.value.reason == "malformed"


def test_only_a_timestamping_certificate_is_a_tsa() -> None:
    """RFC 3161 2.3: the signer's extended key usage is critical and timeStamping alone.
    (openssl ts -reply refuses to sign with any other certificate, so no such token can be
    made here: the check is exercised on certificates.)"""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from tsa.init import make_certificates
    from tsa.verify import _check_timestamping

    _, tsa_pem, _ = make_certificates("t")
    _check_timestamping(x509.load_pem_x509_certificate(tsa_pem))  # accepted
    for eku, critical in (
        ([ExtendedKeyUsageOID.TIME_STAMPING], False),
        ([ExtendedKeyUsageOID.SERVER_AUTH], True),
        ([ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING], True),
    ):
        with pytest.raises(TokenError) as caught:
            _check_timestamping(_certificate_with(eku, critical))
        assert caught.value.reason == "not_a_tsa"


def _certificate_with(eku: list, critical: bool):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a TSA")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage(eku), critical=critical)
        .sign(key, hashes.SHA256())
    )


def test_a_reply_that_is_not_granted_is_refused(tmp_path: Path) -> None:
    """A TSA whose operator allows SHA-512 imprints only: it answers our SHA-256 query with a
    rejection (badAlg), which the client reports as a refusal, with the TSA's reason."""
    state = init_state(tmp_path / "tsa").state
    cnf = state.path("openssl.cnf")
    cnf.write_text(re.sub(r"(?m)^digests = .*$", "digests = sha512", cnf.read_text()))
    with running_tsa(tmp_path) as (url, _), pytest.raises(TsaError) as caught:
        TsaClient(url).timestamp(DIGEST)
    assert caught.value.kind == "refused"
    assert "rejection" in str(caught.value) and "badAlg" in str(caught.value)


def test_the_client_checks_the_nonce_and_the_imprint(tmp_path: Path) -> None:
    """A granted reply to another query (a replay, or a TSA that mixed up two queries) is no
    token for this one."""
    state = init_state(tmp_path / "tsa").state
    authority = Authority(state.dir)
    reply = authority.reply(der.timestamp_query(DIGEST, nonce=5))
    assert verify_token(token_from_reply(reply, DIGEST, 5), DIGEST, state.ca_pem) > 0
    with pytest.raises(TsaError, match="nonce") as caught:
        token_from_reply(reply, DIGEST, 6)
    assert caught.value.kind == "malformed"
    with pytest.raises(TsaError, match="another digest"):
        token_from_reply(reply, hashlib.sha256(b"x").digest(), 5)
    with pytest.raises(TsaError, match="not an RFC 3161 reply"):
        token_from_reply(b"<html>", DIGEST, 5)


def test_an_unreachable_tsa_is_said_so(tmp_path: Path) -> None:
    with running_tsa(tmp_path) as (url, _):
        pass  # it stopped: nothing listens on its port any more
    with pytest.raises(TsaError) as caught:
        TsaClient(url, timeout=5).timestamp(DIGEST)
    assert caught.value.kind == "unreachable"
    assert url in str(caught.value)


def test_a_server_that_is_no_tsa_is_refused(tsa) -> None:
    """GET-only paths and wrong types are HTTP refusals, not tokens."""
    url, _ = tsa
    with pytest.raises(TsaError) as caught:
        TsaClient(url + "nowhere").timestamp(DIGEST)
    assert caught.value.kind == "refused" and "HTTP 404" in str(caught.value)


def test_serial_numbers_never_repeat(tmp_path: Path) -> None:
    """Across replies and across restarts of the server on the same state folder."""
    from tsa.verify import token_serial

    serials = []
    for _ in range(3):
        with running_tsa(tmp_path) as (url, ca_pem):
            client = TsaClient(url)
            for i in range(4):
                digest = hashlib.sha256(b"%d" % i).digest()
                token = client.timestamp(digest)
                verify_token(token, digest, ca_pem)
                serials.append(token_serial(token))
    assert len(set(serials)) == len(serials) == 12
    assert serials == sorted(serials)


def _chained_tsa(state_dir: Path, intermediate_is_ca: bool = True) -> bytes:
    """Make the TSA in ``state_dir`` sign under root -> intermediate -> TSA, the token
    carrying the intermediate (openssl's `certs`: it sends that SET unsorted); the root."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from tsa.init import _key_usage

    state = init_state(state_dir).state
    now = dt.datetime.now(dt.UTC)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]

    def cert(subject: str, issuer: str, i: int, by: int, ca: bool, tsa: bool = False):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(keys[i].public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=ca), critical=True)
        )
        if tsa:
            eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING])
            b = b.add_extension(eku, critical=True)
        return b.sign(keys[by], hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    root = cert("root", "root", 0, 0, True)
    state.path("ca.pem").write_bytes(root)
    state.path("ica.pem").write_bytes(cert("intermediate", "root", 1, 0, intermediate_is_ca))
    state.path("tsa.pem").write_bytes(cert("tsa", "intermediate", 2, 1, False, tsa=True))
    state.path("tsa.key").write_bytes(
        keys[2].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cnf = state.path("openssl.cnf")
    cnf.write_text(cnf.read_text() + f"certs = {state.dir}/ica.pem\n")
    return root


def test_a_tsa_under_an_intermediate_ca_verifies(tmp_path: Path, tsa) -> None:
    """As public TSAs sign: the token carries the intermediate, the verifier holds the root."""
    root = _chained_tsa(tmp_path / "tsa")
    with running_tsa(tmp_path) as (url, _):
        token = TsaClient(url).timestamp(DIGEST)
    assert verify_token(token, DIGEST, root) > 0
    with pytest.raises(TokenError) as caught:
        verify_token(token, DIGEST, tsa[1])
    assert caught.value.reason == "untrusted"


def test_an_intermediate_that_is_no_ca_breaks_the_chain(tmp_path: Path) -> None:
    root = _chained_tsa(tmp_path / "tsa", intermediate_is_ca=False)
    with running_tsa(tmp_path) as (url, _):
        token = TsaClient(url).timestamp(DIGEST)
    with pytest.raises(TokenError) as caught:
        verify_token(token, DIGEST, root)
    assert caught.value.reason == "untrusted"


@pytest.mark.parametrize(
    ("kind", "body", "says"),
    [
        ("text/html", b"<html>hello</html>", "answered text/html, not application/timestamp"),
        ("application/timestamp-reply", bytes(2 << 20), "answered over 1 MiB"),
        ("application/timestamp-reply", b"\x30\x03\x02\x01", "not an RFC 3161 reply"),
    ],
)
def test_a_web_server_that_is_no_tsa_gives_no_token(kind: str, body: bytes, says: str) -> None:
    """A URL that answers 200, but not with a time-stamp reply (a captive portal, a wrong
    port, a broken proxy)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Other(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with HTTPServer(("127.0.0.1", 0), Other) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        with pytest.raises(TsaError) as caught:
            TsaClient(f"http://127.0.0.1:{server.server_address[1]}/").timestamp(DIGEST)
        thread.join(timeout=30)
    assert caught.value.kind == "malformed"
    assert says in str(caught.value)
