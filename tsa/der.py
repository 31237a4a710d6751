"""The little DER that RFC 3161 needs here, in the standard library: the time-stamp query
(built by hand, so that the client hashes nothing itself and loads no ASN.1 library) and the
outer layers of a reply (its status and its token)."""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE, INTEGER, BOOLEAN, OCTET_STRING, NULL, OID, UTF8_STRING = (
    0x30,
    0x02,
    0x01,
    0x04,
    0x05,
    0x06,
    0x0C,
)
BIT_STRING = 0x03
# id-sha256 (NIST): 2.16.840.1.101.3.4.2.1
SHA256_OID_DER = bytes.fromhex("0609608648016503040201")


class DerError(ValueError):
    """Bytes that are not the DER expected."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes
    start: int  # where this element (its tag) starts in the buffer it was read from
    end: int  # just past it

    def raw(self, buf: bytes) -> bytes:
        """The whole element (tag, length, value) out of ``buf``, the buffer it was read from."""
        return buf[self.start : self.end]


def encode(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + value


def encode_int(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative integers are encoded here")
    return encode(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def read(buf: bytes, offset: int = 0) -> Tlv:
    """The element that starts at ``offset`` (single-byte tags, definite lengths)."""
    if offset + 2 > len(buf):
        raise DerError("truncated")
    tag, first = buf[offset], buf[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(buf):
            raise DerError("bad length")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    if pos + length > len(buf):
        raise DerError("truncated")
    return Tlv(tag, buf[pos : pos + length], offset, pos + length)


def read_whole(buf: bytes, tag: int) -> Tlv:
    """``buf`` is exactly one element with ``tag``."""
    tlv = read(buf)
    if tlv.tag != tag or tlv.end != len(buf):
        raise DerError(f"expected one element with tag 0x{tag:02x}")
    return tlv


def children(value: bytes) -> list[Tlv]:
    out, pos = [], 0
    while pos < len(value):
        tlv = read(value, pos)
        out.append(tlv)
        pos = tlv.end
    return out


def read_int(tlv: Tlv) -> int:
    if tlv.tag != INTEGER or not tlv.value:
        raise DerError("expected an INTEGER")
    return int.from_bytes(tlv.value, "big", signed=True)


def timestamp_query(digest_sha256: bytes, nonce: int) -> bytes:
    """TimeStampReq (RFC 3161 2.4.1): version 1, a SHA-256 imprint, ``nonce``, certReq."""
    if len(digest_sha256) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    algorithm = encode(SEQUENCE, SHA256_OID_DER + encode(NULL, b""))
    imprint = encode(SEQUENCE, algorithm + encode(OCTET_STRING, digest_sha256))
    return encode(SEQUENCE, encode_int(1) + imprint + encode_int(nonce) + encode(BOOLEAN, b"\xff"))


@dataclass(frozen=True)
class ReplyParts:
    status: int  # PKIStatus: 0 granted, 1 grantedWithMods, 2 rejection, ...
    status_text: str  # the TSA's free text, if any
    fail_info: int | None  # the PKIFailureInfo bits, as an int (bit 0 first), if any
    token: bytes | None  # the TimeStampToken's DER (a ContentInfo), if any


def reply_parts(reply: bytes) -> ReplyParts:
    """TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken OPTIONAL }."""
    body = read_whole(reply, SEQUENCE).value
    outer = children(body)
    if not outer or outer[0].tag != SEQUENCE or len(outer) > 2:
        raise DerError("not a TimeStampResp")
    info = children(outer[0].value)
    if not info:
        raise DerError("an empty PKIStatusInfo")
    status, text, fail_info = read_int(info[0]), [], None
    for item in info[1:]:
        if item.tag == SEQUENCE:  # PKIFreeText: SEQUENCE OF UTF8String
            text += [t.value.decode("utf-8", "replace") for t in children(item.value)]
        elif item.tag == BIT_STRING and item.value:
            bits = item.value[1:]
            value = int.from_bytes(bits, "big") if bits else 0
            # DER bit 0 is the most significant bit of the first byte
            width = 8 * len(bits)
            fail_info = sum(1 << i for i in range(width) if value >> (width - 1 - i) & 1)
    token = None
    if len(outer) == 2:
        if outer[1].tag != SEQUENCE:
            raise DerError("the token is not a ContentInfo")
        token = outer[1].raw(body)
    return ReplyParts(status, "; ".join(text), fail_info, token)


def wrap_token(token: bytes) -> bytes:
    """A granted TimeStampResp around ``token`` (for libraries that read whole replies)."""
    return encode(SEQUENCE, encode(SEQUENCE, encode_int(0)) + token)


def sorted_set(elements: list[bytes]) -> list[bytes]:
    """X.690 11.6: a SET OF's encodings in ascending order, compared as octet strings with
    the shorter padded with zero octets at its end."""
    width = max((len(e) for e in elements), default=0)
    return sorted(elements, key=lambda e: e.ljust(width, b"\x00"))


def with_sorted_certificates(token: bytes) -> bytes:
    """``token`` with its SignedData's ``certificates`` SET in DER order.

    Some TSAs (``openssl ts`` with a chain among them) send that SET unsorted, which strict
    DER parsers refuse. The SET is not covered by the signature (RFC 5652 5.4: only the
    signed attributes are), so reordering it changes nothing that is checked."""
    info = read_whole(token, SEQUENCE)
    parts = children(info.value)
    if len(parts) != 2 or parts[1].tag != 0xA0:
        raise DerError("not a ContentInfo with content")
    signed = read_whole(parts[1].value, SEQUENCE)
    fields = children(signed.value)
    out = []
    for f in fields:
        raw = f.raw(signed.value)
        if f.tag == 0xA0:  # certificates [0] IMPLICIT CertificateSet
            certs = [c.raw(f.value) for c in children(f.value)]
            raw = encode(0xA0, b"".join(sorted_set(certs)))
        out.append(raw)
    content = encode(SEQUENCE, b"".join(out))
    return encode(SEQUENCE, parts[0].raw(info.value) + encode(0xA0, content))
