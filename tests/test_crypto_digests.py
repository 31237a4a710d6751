"""The stored digest and the plain digest (docs/evidence-format.md, "Stored digest and plain
digest"): the camera makes them from the chunk hashes it signs, the dock and the verifiers
from the file's bytes as they come; an outsider with the specification's dozen lines of
Python gets the same answer, and a file that is not a header and whole chunks has none."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey

from crypto.digests import StoredDigest, plain_digest_from, stored_digest_from, stored_digest_of
from crypto.identity import DeviceIdentity
from crypto.records import sha256_hex
from crypto.seal import parse_segment
from crypto.testing import Written, make_sink, seed, write_segment

SPEC = Path(__file__).parents[1] / "docs" / "evidence-format.md"
VECTOR_SEGMENTS = sorted((Path(__file__).parent / "vectors").rglob("*.bwvseg"))


def _spec_function():
    """The reference function exactly as the specification prints it."""
    text = SPEC.read_text()
    block = re.search(
        r"```python\n(import hashlib, struct\n.*?def stored_digest.*?)```", text, re.S
    )
    assert block, "the specification's reference function is gone"
    scope: dict = {}
    exec(block.group(1), scope)  # noqa: S102 - our own specification's code
    return scope["stored_digest"]


def _segment(tmp_path: Path, fragments: int = 3) -> tuple[bytes, dict]:
    ident = DeviceIdentity.from_seed("dig-01", seed("digests"))
    agency = PrivateKey(seed("digests agency"))
    sink = make_sink(tmp_path, ident, agency)
    write_segment(sink, Written("d1"), 0, fragments=fragments, size=3000)
    sink.close()
    outbox = tmp_path / "outbox"
    manifest = json.loads(next((outbox / "chain").glob("*.manifest.json")).read_bytes())
    return (outbox / "segments" / "d1_0000.bwvseg").read_bytes(), manifest["record"]


def test_the_camera_the_file_and_the_specification_agree(tmp_path):
    data, m = _segment(tmp_path)
    spec = _spec_function()
    assert stored_digest_of(data) == spec(data) == m["stored_digest"]
    parsed = parse_segment(data)
    assert m["stored_digest"] == stored_digest_from(
        sha256_hex(parsed.header), (sha256_hex(c) for c in parsed.chunks)
    )
    plain = [c["plain_sha256"] for c in m["chunks"] if c["kind"] != "final"]
    assert m["plain_digest"] == plain_digest_from(plain)
    # not the SHA-256 of the file: an auditor's sha256sum is not the stored digest
    assert m["stored_digest"] != sha256_hex(data)


def test_every_stored_segment_of_the_vectors_has_the_digest_the_specification_gives():
    spec = _spec_function()
    assert VECTOR_SEGMENTS
    for p in VECTOR_SEGMENTS:
        data = p.read_bytes()
        assert stored_digest_of(data) == spec(data), p


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=40))
def test_fed_in_pieces_of_any_size_the_digest_is_the_same(tmp_path_factory, cuts):
    data, m = _segment(tmp_path_factory.mktemp("d"), fragments=2)
    d = StoredDigest()
    pos = 0
    for n in cuts:
        d.update(data[pos : pos + n])
        pos += n
    d.update(data[pos:])
    assert d.hexdigest() == m["stored_digest"] and d.size == len(data)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=1, max_value=10_000), junk=st.binary(min_size=1, max_size=30))
def test_a_cut_or_lengthened_file_is_not_the_signed_one(tmp_path_factory, cut, junk):
    """Cut anywhere, or with bytes added, a file never has the signed digest: cut inside a
    chunk (or its header) or lengthened by less than a whole chunk, it has none at all."""
    data, m = _segment(tmp_path_factory.mktemp("t"), fragments=2)
    spec = _spec_function()
    ends = set(parse_segment(data).offsets) | {len(data)}
    torn = data[: max(0, len(data) - cut)]
    assert stored_digest_of(torn) == spec(torn) != m["stored_digest"]
    if len(torn) not in ends:
        assert stored_digest_of(torn) is None
        d = StoredDigest()
        d.update(torn)
        assert d.hexdigest() is None and d.why_none()
    longer = data + junk
    assert stored_digest_of(longer) is None and spec(longer) is None


def _signed_line(ident, record: dict) -> bytes:
    """A record signed as the format says, without sign_record's own schema check (what a
    faulty or forging device could sign)."""
    from crypto import canonical
    from crypto.records import domain

    body = canonical.encode(record)
    sig = ident.sign(domain(record["type"]) + body)
    return b'{"record":' + body + b',"sig":"' + sig.hex().encode() + b'"}\n'


def test_a_signed_manifest_whose_digests_do_not_follow_from_its_chunks_is_refused(tmp_path):
    """Signed by the device's own key, but naming its file by a SHA-256 of its bytes (the
    v2 way) or a plain digest that is not its chunks': it fails its schema, as any verifier
    following the specification refuses it."""
    from crypto.records import RecordError, verify_line

    data, m = _segment(tmp_path)
    ident = DeviceIdentity.from_seed("dig-01", seed("digests"))
    assert verify_line(_signed_line(ident, m), ident.public_key).record == m
    for field, value in (("stored_digest", sha256_hex(data)), ("plain_digest", "0" * 64)):
        forged = {**m, field: value}
        with pytest.raises(RecordError) as err:
            verify_line(_signed_line(ident, forged), ident.public_key)
        assert err.value.reason == "schema" and field in err.value.detail


def test_a_stored_file_with_bytes_appended_is_not_the_one_its_manifest_signs(tmp_path):
    from crypto.verify import verify_outbox

    _segment(tmp_path)
    ident = DeviceIdentity.from_seed("dig-01", seed("digests"))
    outbox = tmp_path / "outbox"
    seg = outbox / "segments" / "d1_0000.bwvseg"
    (before,) = verify_outbox(outbox, ident.public_key, None).segments
    assert before.status == "authentic"
    seg.write_bytes(seg.read_bytes() + bytes(21))  # one more "chunk" of zeros, framed
    report = verify_outbox(outbox, ident.public_key, None)
    (after,) = report.segments
    assert after.status != "authentic" and not report.ok
