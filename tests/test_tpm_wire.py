"""The dock reads TPM structures from the network by hand (dock/tpm_wire.py, dock/attest.py):
whatever bytes arrive, the answer is a parsed structure or an AttestationError, never another
exception; and an attestation with any one bit of any field changed is refused. The structures
come from a real exchange with swtpm."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dock.attest import AttestationError, check_attestation, kdfa, make_credential
from dock.tpm_wire import parse_certify_info, parse_public, parse_signature
from tests.swtpm import SwTpm, swtpm_server  # noqa: F401  (fixture)
from tests.test_tpm_attest import Run, attest

PARSERS = {
    "ak_public": parse_public,
    "key_public": parse_public,
    "certify_info": parse_certify_info,
    "certify_signature": parse_signature,
}
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def real(swtpm_server: SwTpm) -> tuple[Run, list[Any]]:  # noqa: F811
    from tpm.signer import create_device_key

    with swtpm_server.open() as esapi:
        create_device_key(esapi)
    return attest(swtpm_server), list(swtpm_server.cas())


def test_the_real_structures_parse(real: tuple[Run, list[Any]]) -> None:
    run, _ = real
    for name, parse in PARSERS.items():
        parse(bytes.fromhex(run.att[name]))


@FUZZ
@given(data=st.data())
def test_a_truncated_or_extended_structure_is_refused(
    real: tuple[Run, list[Any]], data: st.DataObject
) -> None:
    run, _ = real
    name = data.draw(st.sampled_from(sorted(PARSERS)))
    raw = bytes.fromhex(run.att[name])
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(AttestationError) as e:
        PARSERS[name](raw[:cut])
    assert e.value.reason == "malformed"
    with pytest.raises(AttestationError):
        PARSERS[name](raw + data.draw(st.binary(min_size=1, max_size=8)))


@FUZZ
@given(name=st.sampled_from(sorted(PARSERS)), raw=st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused(name: str, raw: bytes) -> None:
    try:
        PARSERS[name](raw)
    except AttestationError as e:
        assert e.reason in {"malformed", "bad_certify"}


@FUZZ
@given(data=st.data())
def test_any_one_bit_changed_is_refused(real: tuple[Run, list[Any]], data: st.DataObject) -> None:
    run, cas = real
    name = data.draw(st.sampled_from(sorted(run.att)))
    raw = bytearray.fromhex(run.att[name])
    bit = data.draw(st.integers(min_value=0, max_value=len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    att = {**run.att, name: raw.hex()}
    with pytest.raises(AttestationError):
        check_attestation(
            att,
            public_key=run.public_key,
            secret=run.secret,
            qualifying_data=run.challenge,
            trusted_cas=cas,
        )


@FUZZ
@given(data=st.data())
def test_garbled_fields_are_refused_as_attestation_errors(
    real: tuple[Run, list[Any]], data: st.DataObject
) -> None:
    run, cas = real
    name = data.draw(st.sampled_from(sorted(run.att)))
    value = data.draw(
        st.one_of(
            st.binary(max_size=80).map(bytes.hex), st.text(max_size=20), st.none(), st.integers()
        )
    )
    att = {**run.att, name: value}
    with pytest.raises(AttestationError):
        check_attestation(
            att,
            public_key=run.public_key,
            secret=run.secret,
            qualifying_data=run.challenge,
            trusted_cas=cas,
        )


@FUZZ
@given(ek=st.binary(max_size=64), ak=st.binary(max_size=64))
def test_make_credential_refuses_garbage_as_malformed(ek: bytes, ak: bytes) -> None:
    with pytest.raises(AttestationError):
        make_credential(ek, ak)


def test_make_credential_refuses_an_ak_that_is_not_a_restricted_signing_key(
    real: tuple[Run, list[Any]],
) -> None:
    """The device key (not restricted) offered as the AK: it could sign anything."""
    run, _ = real
    ek = bytes.fromhex(run.att["ek_certificate"])
    with pytest.raises(AttestationError) as e:
        make_credential(ek, bytes.fromhex(run.att["key_public"]))
    assert e.value.reason == "bad_certify"


@settings(max_examples=30, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=64),
    label=st.binary(max_size=16),
    u=st.binary(max_size=34),
    bits=st.sampled_from([128, 256, 512]),
)
def test_kdfa_agrees_with_tpm2_pytss(key: bytes, label: bytes, u: bytes, bits: int) -> None:
    pytest.importorskip("tpm2_pytss")
    from cryptography.hazmat.primitives import hashes
    from tpm2_pytss.constants import TPM2_ALG
    from tpm2_pytss.internal.crypto import _kdfa

    assert kdfa(hashes.SHA256, key, label, u, b"", bits) == _kdfa(
        TPM2_ALG.SHA256, key, label, u, b"", bits
    )


def test_the_secret_is_bound_to_the_keys_it_was_made_for(real: tuple[Run, list[Any]]) -> None:
    run, _ = real
    ek, ak = bytes.fromhex(run.att["ek_certificate"]), bytes.fromhex(run.att["ak_public"])
    a, blob_a, enc_a = make_credential(ek, ak)
    b, blob_b, enc_b = make_credential(ek, ak)
    assert a[:32] != b[:32] and blob_a != blob_b and enc_a != enc_b  # fresh each time
    assert a[32:] == b[32:]  # the same binding


def test_every_one_bit_change_of_the_ek_certificate_reads_or_is_malformed(
    real: tuple[Run, list[Any]],
) -> None:
    """Exhaustively, not by sampling: a garbled certificate made cryptography raise
    ValueError, InvalidVersion and TypeError by turns (each found by the test above)."""
    from dock.attest import ek_public_key

    run, _ = real
    der = bytes.fromhex(run.att["ek_certificate"])
    for bit in range(len(der) * 8):
        raw = bytearray(der)
        raw[bit // 8] ^= 1 << (bit % 8)
        try:
            cert, _key = ek_public_key(bytes(raw))
            cert.issuer.rfc4514_string()
        except AttestationError as e:
            assert e.reason == "malformed"
