"""Encryption at rest: per-segment key, secretstream chunks, key sealed to the agency."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey

from crypto.seal import (
    ABYTES,
    LEN,
    SealFormatError,
    SegmentContext,
    SegmentEncryptor,
    agency_key_id,
    decrypt_segment,
    frame,
    parse_segment,
)
from crypto.testing import agency_key, device_identity

CTX = SegmentContext(
    "cam-1",
    "0011223344556677",
    "rec1",
    3,
    5_000_000,
    1_700_000_000_000_000,
    "synced",
    {"press_us": 7},
)


def _seal(blobs: list[bytes], agency: PrivateKey, final: bool = True) -> bytes:
    enc = SegmentEncryptor(agency.public_key, CTX)
    out = enc.header + b"".join(frame(enc.push(b)) for b in blobs)
    if final:
        out += frame(enc.push(b"", final=True))
    enc.forget()
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=6))
def test_round_trip(blobs):
    agency = agency_key()
    stored = _seal(blobs, agency)
    d = decrypt_segment(stored, agency)
    assert d.error is None and d.final and not d.truncated
    assert d.blobs == blobs
    assert d.context == replace(CTX, agency_key_id=agency_key_id(agency.public_key))
    seg = parse_segment(stored)
    assert len(seg.chunks) == len(blobs) + 1
    assert [len(c) for c in seg.chunks] == [len(b) + ABYTES for b in blobs] + [ABYTES]


def test_empty_blobs_keep_their_place():
    agency = agency_key()
    d = decrypt_segment(_seal([b"init", b"", b"x"], agency), agency)
    assert d.blobs == [b"init", b"", b"x"]


def test_no_final_tag_is_truncation_and_torn_chunk_is_reported():
    agency = agency_key()
    blobs = [b"i" * 50, b"f" * 300, b"g" * 300]
    stored = _seal(blobs, agency, final=False)
    d = decrypt_segment(stored, agency)
    assert d.error is None and not d.final and d.truncated and d.blobs == blobs
    cut = decrypt_segment(stored[:-10], agency)
    assert cut.blobs == blobs[:2] and not cut.final and "past the end" in cut.error


def test_device_cannot_decrypt_without_the_agency_secret():
    agency = agency_key()
    device = device_identity()
    secret = b"what happened at the door" * 10
    stored = _seal([b"init", secret], agency)
    assert secret not in stored and hashlib.sha256(secret).digest() not in stored
    # not with the device's own key, nor with any other key
    device_x25519 = device._signing_key.to_curve25519_private_key()  # its own secret
    for key in (device_x25519, PrivateKey.generate()):
        d = decrypt_segment(stored, key)
        assert d.blobs == [] and "does not open" in d.error


def test_each_segment_has_its_own_key_and_forgets_it():
    agency = agency_key()
    a = SegmentEncryptor(agency.public_key, CTX)
    b = SegmentEncryptor(agency.public_key, CTX)
    assert a.header != b.header  # a fresh key (and stream header) per segment
    a.push(b"x")
    a.forget()
    with pytest.raises(RuntimeError):
        a.push(b"y")
    assert repr(b) == "SegmentEncryptor(open=True)"


def test_reordered_altered_and_rebound_chunks_do_not_decrypt():
    agency = agency_key()
    blobs = [b"init", b"one" * 20, b"two" * 20]
    stored = _seal(blobs, agency)
    seg = parse_segment(stored)
    frames = [frame(c) for c in seg.chunks]
    swapped = seg.header + frames[0] + frames[2] + frames[1] + frames[3]
    d = decrypt_segment(swapped, agency)
    assert d.blobs == blobs[:1] and "chunk 1 does not decrypt" in d.error
    flipped = bytearray(stored)
    flipped[-5] ^= 1
    assert not decrypt_segment(bytes(flipped), agency).final
    # the header is bound to every chunk: a changed context breaks decryption
    other = SegmentEncryptor(agency.public_key, CTX)
    rebound = seg.header.replace(b'"segment_index":3', b'"segment_index":4') + b"".join(frames)
    assert decrypt_segment(rebound, agency).error is not None
    assert other.header[:6] == b"BWVSEG"
    after_final = stored + frames[1]
    assert "after the final" in decrypt_segment(after_final, agency).error


@pytest.mark.parametrize(
    "data", [b"", b"BWVSEG", b"XXXXXXXXXXXXXXXXXX", b"BWVSEG\x00\x02" + b"\0" * 200]
)
def test_garbage_is_a_format_error_not_a_crash(data):
    with pytest.raises(SealFormatError):
        parse_segment(data)
    d = decrypt_segment(data, agency_key())
    assert d.error and d.blobs == []


def test_length_prefix_is_big_endian_u32():
    assert frame(b"a" * 17) == LEN.pack(17) + b"a" * 17 == b"\x00\x00\x00\x11" + b"a" * 17


def test_the_header_signs_the_agency_key_it_is_sealed_to():
    """Format v2: the context names the agency key id (SHA-256 of the 32-byte X25519 public
    key, 16 hex digits) of the key the segment key is sealed to."""
    agency = agency_key()
    stored = _seal([b"x"], agency)
    ctx = parse_segment(stored).context
    want = hashlib.sha256(bytes(agency.public_key)).hexdigest()[:16]
    assert ctx.agency_key_id == want
    other = PrivateKey.generate()
    with pytest.raises(ValueError, match="agency key"):
        SegmentEncryptor(other.public_key, replace(CTX, agency_key_id=want))


def test_a_version_1_segment_is_refused_with_its_version():
    stored = bytearray(_seal([b"x"], agency_key()))
    stored[6:8] = struct.pack(">H", 1)
    with pytest.raises(SealFormatError, match="version 1: this reader knows version 2 only"):
        parse_segment(bytes(stored))
