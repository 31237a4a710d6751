"""The TPM 2.0 structures the dock reads (TPM 2.0 spec part 2), by hand with ``struct``: a
TPM2B_PUBLIC / TPMT_PUBLIC, a TPMS_ATTEST of a certification, a TPMT_SIGNATURE, and the keys
and signatures they hold. Anything cut short, too long or not understood is refused with
:class:`AttestationError` (reason "malformed", or "bad_certify" for an attestation that is
not a certification); no other exception escapes the parsers."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# TPM 2.0 part 2 constants
ALG_RSA, ALG_KEYEDHASH, ALG_ECC, ALG_SYMCIPHER, ALG_NULL = 0x0001, 0x0008, 0x0023, 0x0025, 0x0010
ALG_RSASSA, ALG_RSAPSS, ALG_ECDSA, ALG_ECDAA = 0x0014, 0x0016, 0x0018, 0x001A
ALG_SHA256, ALG_SHA384 = 0x000B, 0x000C
ECC_NIST_P256, ECC_NIST_P384 = 0x0003, 0x0004
GENERATED_VALUE = 0xFF544347  # TPM_GENERATED_VALUE: a structure the TPM itself made
ST_ATTEST_CERTIFY = 0x8017
FIXED_TPM, FIXED_PARENT, SENSITIVE_DATA_ORIGIN = 0x2, 0x10, 0x20
RESTRICTED, DECRYPT, SIGN = 0x10000, 0x20000, 0x40000
BOUND = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN
HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    ALG_SHA256: hashes.SHA256,
    ALG_SHA384: hashes.SHA384,
}
CURVES: dict[int, type[ec.EllipticCurve]] = {
    ECC_NIST_P256: ec.SECP256R1,
    ECC_NIST_P384: ec.SECP384R1,
}


class AttestationError(Exception):
    """An attestation refused; ``reason`` is one word, the message says what was wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- reading TPM structures -------------------------------------------------------------


class Reader:
    """Big-endian fields off a byte string; a short read is a malformed structure."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = bytes(data), 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise AttestationError("malformed", f"{self.what} is cut short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def tpm2b(self) -> bytes:
        return self.take(self.u16())

    def end(self) -> None:
        if self.pos != len(self.data):
            raise AttestationError(
                "malformed", f"{self.what} has {len(self.data) - self.pos} bytes too many"
            )


@dataclass(frozen=True)
class Public:
    """A TPMT_PUBLIC: what the checks need, and its bytes (the name is a hash of them)."""

    raw: bytes
    type: int
    name_alg: int
    attributes: int
    scheme: int
    scheme_hash: int
    curve: int  # ECC only
    rsa_bits: int  # RSA only
    rsa_exponent: int
    unique: tuple[bytes, ...]  # ECC: (x, y); RSA: (modulus,)

    @property
    def name(self) -> bytes:
        """nameAlg ‖ H(TPMT_PUBLIC): the name the TPM gives this object."""
        if self.name_alg not in HASHES:
            raise AttestationError(
                "malformed", f"name algorithm {self.name_alg:#06x} is not supported"
            )
        h = hashes.Hash(HASHES[self.name_alg]())
        h.update(self.raw)
        return struct.pack(">H", self.name_alg) + h.finalize()

    def has(self, attrs: int) -> bool:
        return self.attributes & attrs == attrs


def read_symmetric(r: Reader) -> None:
    if r.u16() != ALG_NULL:
        r.u16(), r.u16()  # keyBits, mode


def read_scheme(r: Reader) -> tuple[int, int]:
    scheme = r.u16()
    if scheme == ALG_NULL:
        return scheme, ALG_NULL
    if scheme == 0x0015:  # TPM_ALG_RSAES: no details
        return scheme, ALG_NULL
    hash_alg = r.u16()
    if scheme == ALG_ECDAA:
        r.u16()  # count
    return scheme, hash_alg


def parse_tpmt_public(data: bytes) -> Public:
    r = Reader(data, "a TPMT_PUBLIC")
    type_, name_alg, attributes = r.u16(), r.u16(), r.u32()
    r.tpm2b()  # authPolicy
    if type_ not in (ALG_RSA, ALG_ECC):
        raise AttestationError("malformed", f"key type {type_:#06x} is neither RSA nor ECC")
    read_symmetric(r)
    scheme, scheme_hash = read_scheme(r)
    curve = rsa_bits = rsa_exponent = 0
    if type_ == ALG_RSA:
        rsa_bits, rsa_exponent = r.u16(), r.u32()
        unique: tuple[bytes, ...] = (r.tpm2b(),)
    else:
        curve = r.u16()
        read_scheme(r)  # kdf
        unique = (r.tpm2b(), r.tpm2b())
    r.end()
    return Public(
        raw=bytes(data),
        type=type_,
        name_alg=name_alg,
        attributes=attributes,
        scheme=scheme,
        scheme_hash=scheme_hash,
        curve=curve,
        rsa_bits=rsa_bits,
        rsa_exponent=rsa_exponent,
        unique=unique,
    )


def parse_public(data: bytes) -> Public:
    """A marshalled TPM2B_PUBLIC (size ‖ TPMT_PUBLIC)."""
    r = Reader(data, "a TPM2B_PUBLIC")
    inner = r.tpm2b()
    r.end()
    return parse_tpmt_public(inner)


@dataclass(frozen=True)
class CertifyInfo:
    """A TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY."""

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    name: bytes
    qualified_name: bytes


def parse_certify_info(data: bytes) -> CertifyInfo:
    r = Reader(data, "the certification (TPMS_ATTEST)")
    magic, type_ = r.u32(), r.u16()
    signer, extra = r.tpm2b(), r.tpm2b()
    r.u64(), r.u32(), r.u32(), r.u8()  # clockInfo: clock, resetCount, restartCount, safe
    r.u64()  # firmwareVersion
    if type_ != ST_ATTEST_CERTIFY:
        raise AttestationError(
            "bad_certify", f"the attestation is of type {type_:#06x}, not a certification"
        )
    name, qualified = r.tpm2b(), r.tpm2b()
    r.end()
    return CertifyInfo(magic, type_, signer, extra, name, qualified)


@dataclass(frozen=True)
class Signature:
    """A TPMT_SIGNATURE: ECDSA (r, s) or RSASSA/RSAPSS (one value)."""

    alg: int
    hash_alg: int
    parts: tuple[bytes, ...]


def parse_signature(data: bytes) -> Signature:
    r = Reader(data, "the certification's signature (TPMT_SIGNATURE)")
    alg = r.u16()
    if alg in (ALG_ECDSA,):
        hash_alg = r.u16()
        parts: tuple[bytes, ...] = (r.tpm2b(), r.tpm2b())
    elif alg in (ALG_RSASSA, ALG_RSAPSS):
        hash_alg = r.u16()
        parts = (r.tpm2b(),)
    else:
        raise AttestationError("bad_certify", f"signature algorithm {alg:#06x} is not supported")
    r.end()
    return Signature(alg, hash_alg, parts)


# --- keys -----------------------------------------------------------------------------


def public_key_of(pub: Public) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    try:
        if pub.type == ALG_ECC:
            if pub.curve not in CURVES:
                raise AttestationError("malformed", f"curve {pub.curve:#06x} is not supported")
            size = CURVES[pub.curve]().key_size // 8
            x, y = (v.rjust(size, b"\0") for v in pub.unique)
            if len(x) != size or len(y) != size:
                raise AttestationError("malformed", "an ECC point's coordinate is too long")
            return ec.EllipticCurvePublicKey.from_encoded_point(
                CURVES[pub.curve](), b"\x04" + x + y
            )
        exponent = pub.rsa_exponent or 65537
        return rsa.RSAPublicNumbers(exponent, int.from_bytes(pub.unique[0], "big")).public_key()
    except ValueError as e:
        raise AttestationError("malformed", f"not a valid public key: {e}") from None


def verify_tpm_signature(pub: Public, sig: Signature, message: bytes) -> bool:
    if sig.hash_alg not in HASHES:
        return False
    algorithm = HASHES[sig.hash_alg]()
    key = public_key_of(pub)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and sig.alg == ALG_ECDSA:
            r, s = (int.from_bytes(p, "big") for p in sig.parts)
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey) and sig.alg == ALG_RSASSA:
            key.verify(sig.parts[0], message, padding.PKCS1v15(), algorithm)
        elif isinstance(key, rsa.RSAPublicKey) and sig.alg == ALG_RSAPSS:
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO)
            key.verify(sig.parts[0], message, pss, algorithm)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True
