"""Enrollment with attestation, end to end on a real (software) TPM: the device's side
(tpm.attest.TpmAttestor) against the dock's (dock.attest), with swtpm's local CA as the TPM
maker. Accepted as it is; refused, with the reason the dock reports, for each thing that would
let a key outside a trusted TPM enroll."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dock.attest import AttestationError, check_attestation, make_credential
from tests.swtpm import SwTpm, swtpm_server  # noqa: F401  (fixture)

LOOSE_HANDLE = 0x81010044  # a key made without fixedTPM|fixedParent


@dataclass
class Run:
    att: dict[str, str]
    secret: bytes
    challenge: bytes
    public_key: bytes


@pytest.fixture(scope="module")
def device(swtpm_server: SwTpm) -> SwTpm:  # noqa: F811
    from tpm2_pytss import ESYS_TR, TPMA_OBJECT

    from tpm.signer import create_device_key, create_key, device_key_template, storage_primary

    with swtpm_server.open() as esapi:
        create_device_key(esapi)
        attrs = (
            TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.SENSITIVEDATAORIGIN
        )
        loose, _ = create_key(esapi, storage_primary(esapi), device_key_template(attrs))
        esapi.evict_control(ESYS_TR.OWNER, loose, LOOSE_HANDLE)
        esapi.flush_context(loose)
    return swtpm_server


def public_at(tpm: SwTpm, handle: int) -> bytes:
    from tpm.signer import point_of

    with tpm.open() as esapi:
        public, _, _ = esapi.read_public(esapi.tr_from_tpmpublic(handle))
    return bytes(point_of(public))


def attest(tpm: SwTpm, handle: int | None = None) -> Run:
    """One exchange as the dock and the device make it."""
    from tpm.attest import TpmAttestor
    from tpm.signer import KEY_HANDLE

    handle = handle or KEY_HANDLE
    attestor = TpmAttestor(tpm.tcti, key_handle=handle)
    asked = attestor.begin()
    secret, blob, encrypted = make_credential(
        bytes.fromhex(asked["ek_certificate"]), bytes.fromhex(asked["ak_public"])
    )
    challenge = os.urandom(32)
    credential = {"credential_blob": blob.hex(), "encrypted_secret": encrypted.hex()}
    att = attestor.finish(credential, challenge.hex())
    return Run(att, secret, challenge, public_at(tpm, handle))


def check(run: Run, trusted: Any, **changes: Any) -> Any:
    kwargs: dict[str, Any] = {
        "public_key": run.public_key,
        "secret": run.secret,
        "qualifying_data": run.challenge,
        "trusted_cas": trusted,
    }
    kwargs.update(changes)
    return check_attestation(run.att, **kwargs)


def refused(run: Run, trusted: Any, **changes: Any) -> AttestationError:
    with pytest.raises(AttestationError) as e:
        check(run, trusted, **changes)
    return e.value


def make_ca(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def run(device: SwTpm) -> Run:
    return attest(device)


def test_accepted_with_the_makers_ca(device: SwTpm, run: Run) -> None:
    root, issuer = device.cas()
    result = check(run, [root, issuer])
    assert result.attested_by == root.subject.rfc4514_string() == "CN=swtpm-localca-rootca"
    assert result.ek_issuer == issuer.subject.rfc4514_string()
    ek = x509.load_der_x509_certificate(bytes.fromhex(run.att["ek_certificate"]))
    assert result.ek_serial == format(ek.serial_number, "x")


def test_the_intermediate_may_be_given_apart_from_the_trusted_root(device: SwTpm, run: Run) -> None:
    root, issuer = device.cas()
    assert check(run, [root], intermediates=[issuer]).attested_by == "CN=swtpm-localca-rootca"
    # trusting the intermediate alone is trusting it
    assert check(run, [issuer]).attested_by == issuer.subject.rfc4514_string()


def test_refused_with_another_ca(device: SwTpm, run: Run) -> None:
    root, issuer = device.cas()
    e = refused(run, [make_ca("Some Other TPM Maker")])
    assert e.reason == "untrusted_ca"
    assert "CN=swtpm-localca" in str(e)
    # a CA with the same name but another key is another CA
    assert (
        refused(run, [make_ca("swtpm-localca"), make_ca("swtpm-localca-rootca")]).reason
        == "untrusted_ca"
    )
    # the root without the intermediate cannot be reached; an intermediate is not trusted
    assert refused(run, [root]).reason == "untrusted_ca"
    assert refused(run, [make_ca("x")], intermediates=[issuer]).reason == "untrusted_ca"
    assert refused(run, []).reason == "untrusted_ca"


def test_refused_for_a_key_that_was_not_certified(device: SwTpm, run: Run) -> None:
    from tpm.signer import create_device_key

    trusted = device.cas()
    with device.open() as esapi:
        other_point = create_device_key(esapi, 0x81010045)
        other_public, _, _ = esapi.read_public(esapi.tr_from_tpmpublic(0x81010045))
    swapped = Run(
        {**run.att, "key_public": other_public.marshal().hex()},
        run.secret,
        run.challenge,
        other_point,
    )
    assert refused(swapped, trusted).reason == "wrong_key"
    # the certified key, enrolled as another key
    assert refused(run, trusted, public_key=other_point).reason == "wrong_key"


def test_refused_for_a_wrong_activated_secret(device: SwTpm, run: Run) -> None:
    trusted = device.cas()
    wrong = {**run.att, "activated_secret": os.urandom(32).hex()}
    e = refused(Run(wrong, run.secret, run.challenge, run.public_key), trusted)
    assert e.reason == "bad_credential"
    other = attest(device)  # another challenge's secret (the same TPM, another AK)
    assert refused(run, trusted, secret=other.secret).reason == "bad_credential"


def test_refused_for_an_attestation_key_other_than_the_credentials(device: SwTpm, run: Run) -> None:
    """The secret came back through AK 1; a certification by AK 2 does not ride on it."""
    trusted = device.cas()
    other = attest(device)
    mixed = {**other.att, "activated_secret": run.att["activated_secret"]}
    assert (
        refused(Run(mixed, run.secret, other.challenge, run.public_key), trusted).reason
        == "bad_credential"
    )


def test_refused_for_other_qualifying_data(device: SwTpm, run: Run) -> None:
    e = refused(run, device.cas(), qualifying_data=os.urandom(32))
    assert e.reason == "bad_certify"


def test_refused_for_a_changed_certification(device: SwTpm, run: Run) -> None:
    info = bytearray.fromhex(run.att["certify_info"])
    info[-1] ^= 1  # the certified name's last byte
    changed = Run(
        {**run.att, "certify_info": info.hex()}, run.secret, run.challenge, run.public_key
    )
    assert refused(changed, device.cas()).reason == "bad_certify"


def test_refused_for_a_key_that_may_leave_the_tpm(device: SwTpm) -> None:
    """A key made in the TPM without fixedTPM|fixedParent, certified by the TPM all the same."""
    loose = attest(device, LOOSE_HANDLE)
    e = refused(loose, device.cas())
    assert e.reason == "not_fixed"
    assert "the device key" in str(e) and "fixedTPM" in str(e)


def test_refused_for_an_attestation_missing_a_field(device: SwTpm, run: Run) -> None:
    for name in run.att:
        partial = {k: v for k, v in run.att.items() if k != name}
        assert (
            refused(Run(partial, run.secret, run.challenge, run.public_key), device.cas()).reason
            == "malformed"
        )
    bad_hex = {**run.att, "certify_signature": "zz"}
    assert (
        refused(Run(bad_hex, run.secret, run.challenge, run.public_key), device.cas()).reason
        == "malformed"
    )
