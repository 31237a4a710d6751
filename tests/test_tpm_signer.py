"""The device key in a real (software) TPM: what it signs verifies as the evidence format's
ECDSA P-256 suite says (low-S r‖s over SHA-256), and its private part cannot be taken out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.swtpm import SwTpm, swtpm_server  # noqa: F401  (fixture)

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def verify(public_key: bytes, message: bytes, sig: bytes) -> bool:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@pytest.fixture(scope="module")
def signer(swtpm_server: SwTpm) -> Iterator[Any]:  # noqa: F811
    from tpm.signer import create_device_key, load_signer

    with swtpm_server.open() as esapi:
        create_device_key(esapi)
    with load_signer("bwv-test-0001", swtpm_server.tcti) as s:
        yield s


def test_the_key_is_a_p256_point_and_its_id_follows_from_it(signer: Any) -> None:
    assert len(signer.public_key) == 65 and signer.public_key[0] == 4
    assert signer.key_id == hashlib.sha256(signer.public_key).hexdigest()[:16]
    assert signer.suite == "ecdsa-p256-sha256"
    assert signer.device_id == "bwv-test-0001"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=st.binary(max_size=300))
def test_a_tpm_signature_verifies_and_is_low_s(signer: Any, message: bytes) -> None:
    sig = signer.sign(message)
    assert len(sig) == 64
    assert int.from_bytes(sig[32:], "big") <= P256_N // 2
    assert verify(signer.public_key, message, sig)
    assert not verify(signer.public_key, message + b"x", sig)


def test_suites_verify_signature_accepts_a_tpm_signature(signer: Any) -> None:
    from crypto import suites

    sig = signer.sign(b"a record")
    assert suites.verify_signature(signer.public_key, b"a record", sig)
    assert not suites.verify_signature(signer.public_key, b"another record", sig)


def test_low_s_is_the_formats_rule() -> None:
    from tpm.signer import low_s  # crypto.suites's, which the TPM's signatures go through

    high = (5).to_bytes(32, "big") + (P256_N - 7).to_bytes(32, "big")
    assert low_s(high) == (5).to_bytes(32, "big") + (7).to_bytes(32, "big")
    low = (5).to_bytes(32, "big") + (7).to_bytes(32, "big")
    assert low_s(low) == low


def test_making_the_key_again_keeps_it_unless_replaced(swtpm_server: SwTpm, signer: Any) -> None:  # noqa: F811
    from tpm.signer import create_device_key

    with swtpm_server.open() as esapi:
        assert create_device_key(esapi) == signer.public_key
        other = create_device_key(esapi, 0x81010043)
        assert other != signer.public_key
        again = create_device_key(esapi, 0x81010043, replace=True)
        assert again not in (other, signer.public_key)


def test_the_key_is_bound_to_the_tpm(swtpm_server: SwTpm, signer: Any) -> None:  # noqa: F811
    from tpm2_pytss import TPMA_OBJECT

    with swtpm_server.open() as esapi:
        public, _, _ = esapi.read_public(esapi.tr_from_tpmpublic(signer.handle))
    attrs = public.publicArea.objectAttributes
    for a in (TPMA_OBJECT.FIXEDTPM, TPMA_OBJECT.FIXEDPARENT, TPMA_OBJECT.SENSITIVEDATAORIGIN):
        assert attrs & a
    assert not attrs & TPMA_OBJECT.DECRYPT


def duplication_policy(esapi: Any) -> tuple[Any, bytes]:
    """A policy session satisfied by PolicyCommandCode(TPM2_Duplicate), and its digest."""
    from tpm2_pytss import ESYS_TR, TPM2_ALG, TPM2_CC, TPM2_SE, TPMT_SYM_DEF

    session = esapi.start_auth_session(
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        TPM2_SE.POLICY,
        TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
        TPM2_ALG.SHA256,
    )
    esapi.policy_command_code(session, TPM2_CC.Duplicate)
    return session, bytes(esapi.policy_get_digest(session))


def try_duplicate(esapi: Any, key: Any) -> None:
    """TPM2_Duplicate with no wrapping at all: the private key in the clear, were it allowed."""
    from tpm2_pytss import ESYS_TR, TPM2_ALG, TPM2B_DATA, TPMT_SYM_DEF_OBJECT

    session, _ = duplication_policy(esapi)
    try:
        esapi.duplicate(
            key,
            ESYS_TR.NULL,
            TPM2B_DATA(),
            TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL),
            session1=session,
        )
    finally:
        esapi.flush_context(session)


def test_the_device_key_cannot_be_duplicated_out(swtpm_server: SwTpm, signer: Any) -> None:  # noqa: F811
    """The device key has no policy that allows TPM2_Duplicate: the TPM refuses it."""
    from tpm2_pytss import TPM2_RC, TSS2_Exception

    with swtpm_server.open() as esapi:
        with pytest.raises(TSS2_Exception) as refused:
            try_duplicate(esapi, esapi.tr_from_tpmpublic(signer.handle))
        assert refused.value.error == TPM2_RC.POLICY_FAIL


def test_fixed_parent_refuses_duplication_even_with_the_policy(swtpm_server: SwTpm) -> None:  # noqa: F811
    """The attribute is what stops it: a key whose policy allows duplication but which has
    fixedParent is refused (TPM_RC_ATTRIBUTES); the same key without it is duplicated."""
    from tpm2_pytss import TPM2_RC, TPMA_OBJECT, TSS2_Exception

    from tpm.signer import create_key, device_key_template, storage_primary

    with swtpm_server.open() as esapi:
        session, digest = duplication_policy(esapi)
        esapi.flush_context(session)
        parent = storage_primary(esapi)
        loose = (
            TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.SENSITIVEDATAORIGIN
        )
        for fixed, refused in ((TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT, True), (0, False)):
            template = device_key_template(loose | fixed)
            template.publicArea.authPolicy = digest
            key, _ = create_key(esapi, parent, template)
            try:
                if refused:
                    with pytest.raises(TSS2_Exception) as e:
                        try_duplicate(esapi, key)
                    assert e.value.error == TPM2_RC.ATTRIBUTES
                else:
                    try_duplicate(esapi, key)  # the control: this one comes out
            finally:
                esapi.flush_context(key)


def test_no_key_at_the_handle_is_said_plainly(swtpm_server: SwTpm) -> None:  # noqa: F811
    from tpm.signer import NoDeviceKey, load_signer

    with pytest.raises(NoDeviceKey, match="no device key at 0x81010099"):
        load_signer("bwv-test-0001", swtpm_server.tcti, handle=0x81010099)
