"""Signature suites (crypto/suites.py): Ed25519 and ECDSA P-256 with low-S, the suite of a key
from its form, r||s <-> DER; P-256 device public keys; v4 records signed by either kind of
key, and what a record's suite and counter must say."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from crypto import canonical
from crypto.identity import (
    P256,
    IdentityError,
    check_device_public_key,
    check_public_key,
    load_device_public_key,
)
from crypto.records import RecordError, domain, sign_record, validate, verify_line
from crypto.suites import (
    ECDSA_P256,
    ED25519,
    P256_HALF_N,
    P256_N,
    der_to_rs,
    low_s,
    p256_public_key,
    rs_to_der,
    suite_of,
    verify_signature,
)
from crypto.testing import SoftP256Signer, device_identity, p256_signer, seed
from dock.protocol import KeySigner, sign_request, verify_request

P256_SIGNER = p256_signer("cam-p256")
ED_SIGNER = device_identity("cam-ed")
scalars = st.integers(min_value=1, max_value=P256_N - 1)


def _high(rs: bytes) -> bytes:
    return rs[:32] + (P256_N - int.from_bytes(rs[32:], "big")).to_bytes(32, "big")


def test_the_suite_follows_from_the_key_form():
    assert suite_of(ED_SIGNER.public_key) == ED25519
    assert suite_of(P256_SIGNER.public_key) == ECDSA_P256
    compressed = b"\x02" + P256_SIGNER.public_key[1:33]
    for bad in (b"", bytes(31), bytes(33), bytes(64), b"\x02" + bytes(64), compressed):
        with pytest.raises(ValueError):
            suite_of(bad)
        assert not verify_signature(bad, b"m", bytes(64))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200))
def test_a_soft_p256_signature_is_low_s_deterministic_and_verifies(message):
    sig = P256_SIGNER.sign(message)
    assert len(sig) == 64 and int.from_bytes(sig[32:], "big") <= P256_HALF_N
    assert P256_SIGNER.sign(message) == sig  # RFC 6979
    assert low_s(sig) == sig
    assert verify_signature(P256_SIGNER.public_key, message, sig)
    assert not verify_signature(P256_SIGNER.public_key, message + b"x", sig)
    assert not verify_signature(p256_signer("another").public_key, message, sig)
    # the high-S twin is a valid textbook ECDSA signature, and refused
    twin = _high(sig)
    key = p256_public_key(P256_SIGNER.public_key)
    key.verify(rs_to_der(twin), message, ec.ECDSA(hashes.SHA256()))
    assert not verify_signature(P256_SIGNER.public_key, message, twin)
    assert low_s(twin) == sig


@settings(max_examples=100, deadline=None)
@given(scalars, scalars)
def test_low_s_is_idempotent_and_low(r, s):
    rs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    once = low_s(rs)
    assert low_s(once) == once and once[:32] == rs[:32]
    t = int.from_bytes(once[32:], "big")
    assert t <= P256_HALF_N and t in (s, P256_N - s)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=1, max_value=2**64))
def test_low_s_normalises_any_signature_of_a_key_into_one_that_verifies(message, k):
    key = ec.derive_private_key(k, ec.SECP256R1())
    pub = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    rs = der_to_rs(key.sign(message, ec.ECDSA(hashes.SHA256())))  # randomised: either S
    assert verify_signature(pub, message, low_s(rs))
    assert verify_signature(pub, message, rs) == (int.from_bytes(rs[32:], "big") <= P256_HALF_N)


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=2**256 - 1), st.integers(0, 2**256 - 1))
def test_any_r_s_goes_through_der_and_back(r, s):
    rs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert der_to_rs(rs_to_der(rs)) == rs


def test_malformed_signatures_are_refused():
    pub = P256_SIGNER.public_key
    sig = P256_SIGNER.sign(b"m")
    zero_r = bytes(32) + sig[32:]
    zero_s = sig[:32] + bytes(32)
    big_r = P256_N.to_bytes(32, "big") + sig[32:]
    for bad in (sig[:63], sig + b"\0", zero_r, zero_s, big_r):
        assert not verify_signature(pub, b"m", bad)
    with pytest.raises(ValueError):
        der_to_rs(b"\x30\x00garbage")
    with pytest.raises(ValueError):
        der_to_rs(rs_to_der(sig)[:-1])
    with pytest.raises(ValueError):
        low_s(zero_s)
    with pytest.raises(ValueError):
        rs_to_der(sig[:10])


def test_a_p256_device_key_loads_from_130_hex_digits_and_must_be_on_the_curve(tmp_path):
    pub = P256_SIGNER.public_key
    (tmp_path / "tpm.pub").write_text(pub.hex() + "\n")
    assert load_device_public_key(tmp_path / "tpm.pub") == pub
    (tmp_path / "ed.pub").write_text(ED_SIGNER.public_key.hex() + "\n")
    assert load_device_public_key(tmp_path / "ed.pub") == ED_SIGNER.public_key
    off = pub[:-1] + bytes([pub[-1] ^ 1])  # y changed: not on the curve
    (tmp_path / "off.pub").write_text(off.hex() + "\n")
    with pytest.raises(IdentityError, match="not a point on the curve"):
        load_device_public_key(tmp_path / "off.pub")
    (tmp_path / "odd.pub").write_text("ab" * 40 + "\n")
    with pytest.raises(IdentityError, match="65 bytes as 130 hex digits"):
        load_device_public_key(tmp_path / "odd.pub")
    with pytest.raises(IdentityError, match="starting 0x04"):
        check_public_key(b"\x05" + pub[1:], P256, "x")
    with pytest.raises(IdentityError, match="not a point"):
        check_device_public_key(b"\x04" + bytes(64), "x")  # (0, 0) is not on P-256
    assert not verify_signature(off, b"m", P256_SIGNER.sign(b"m"))


# -- records -----------------------------------------------------------------------------
def _end(signer, counter) -> dict:
    return {
        "type": "end",
        "v": 4,
        "suite": signer.suite,
        "device_id": signer.device_id,
        "key_id": signer.key_id,
        "seq": 0,
        "prev_sha256": None,
        "counter": counter,
        "firmware_version": "t",
        "recording_id": "r",
        "reason": "stopped",
        "end_us": 1,
        "segment_count": 0,
        "recovered": False,
    }


def test_a_p256_record_signs_and_verifies_over_the_v4_domain():
    rec = _end(P256_SIGNER, 7)
    signed = sign_record(P256_SIGNER, rec)
    assert verify_line(signed.line, P256_SIGNER.public_key).record == rec
    sig = bytes.fromhex(json.loads(signed.line)["sig"])
    assert domain("end") == b"bwv:end:v4\0"
    assert verify_signature(P256_SIGNER.public_key, domain("end") + canonical.encode(rec), sig)
    # its high-S twin: the same record, another line: refused
    twin = signed.line.replace(sig.hex().encode(), _high(sig).hex().encode())
    with pytest.raises(RecordError) as e:
        verify_line(twin, P256_SIGNER.public_key)
    assert e.value.reason == "bad_signature"


def test_the_counter_is_null_exactly_for_ed25519():
    validate(_end(ED_SIGNER, None))
    validate(_end(P256_SIGNER, 0))
    for bad in (_end(ED_SIGNER, 1), _end(P256_SIGNER, None), _end(P256_SIGNER, -1)):
        with pytest.raises(RecordError) as e:
            validate(bad)
        assert e.value.reason == "schema"
    no_counter = _end(P256_SIGNER, 1)
    del no_counter["counter"]
    with pytest.raises(RecordError, match="missing field 'counter'"):
        validate(no_counter)
    with pytest.raises(RecordError, match="'suite'"):
        validate({**_end(ED_SIGNER, None), "suite": "rsa"})


def test_a_record_claiming_another_suite_than_its_key_is_foreign():
    claimed = {**_end(P256_SIGNER, None), "suite": ED25519}
    line = canonical.encode(
        {
            "record": claimed,
            "sig": P256_SIGNER.sign(domain("end") + canonical.encode(claimed)).hex(),
        }
    )
    with pytest.raises(RecordError) as e:
        verify_line(line + b"\n", P256_SIGNER.public_key)
    assert e.value.reason == "foreign" and "suite" in e.value.detail
    with pytest.raises(ValueError, match="cannot be signed"):  # the writer's own mistake
        sign_record(P256_SIGNER, claimed)


def test_an_ed25519_line_does_not_verify_under_a_p256_key_or_back():
    ed = sign_record(ED_SIGNER, _end(ED_SIGNER, None)).line
    p = sign_record(P256_SIGNER, _end(P256_SIGNER, 1)).line
    for line, key in ((ed, P256_SIGNER.public_key), (p, ED_SIGNER.public_key)):
        with pytest.raises(RecordError) as e:
            verify_line(line, key)
        assert e.value.reason == "foreign"


def test_signed_requests_to_the_dock_take_either_suite():
    args = ("POST", "/v1/x?y=1", b"body", "cam-p256", 5, "ab" * 16)
    h = sign_request(P256_SIGNER, *args)
    assert verify_request(P256_SIGNER.public_key, h, "POST", "/v1/x?y=1", b"body")
    assert not verify_request(P256_SIGNER.public_key, h, "POST", "/v1/x?y=2", b"body")
    high = type(h)(h.device_id, h.timestamp_us, h.nonce, _high(h.signature), h.content_digest)
    assert not verify_request(P256_SIGNER.public_key, high, "POST", "/v1/x?y=1", b"body")
    ed = KeySigner(SigningKey(seed("dock test")))
    h2 = sign_request(ed, *args)
    assert verify_request(ed.public_key, h2, "POST", "/v1/x?y=1", b"body")


def test_soft_p256_signer_shows_no_secret():
    s = SoftP256Signer("cam-x", b"secret seed")
    assert "secret" not in repr(s) and str(s.secret_scalar_for_vectors()) not in repr(s)
