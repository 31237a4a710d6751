"""The canonical encoding of signed records: one byte string per value, strictly read back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.canonical import MAX_INT, CanonicalError, decode, encode
from crypto.records import RecordError, domain, parse_line, sign_record, verify_line
from crypto.testing import device_identity


def test_known_encoding():
    value = {
        "b": 1,
        "a": [True, False, None, -7, 'x\n"\\\u0001é\u007f€'],
        "c": b"\x01\xff",
        "B": {"z": 0, "y": ""},
    }
    assert (
        encode(value)
        == (
            '{"B":{"y":"","z":0},"a":[true,false,null,-7,"x\\n\\"\\\\\\u0001é\u007f€"],'
            '"b":1,"c":"01ff"}'
        ).encode()
    )


def test_short_escapes_and_utf16_key_order():
    assert encode("\b\t\n\f\r\x00\x1f") == b'"\\b\\t\\n\\f\\r\\u0000\\u001f"'
    # U+1F600 is a surrogate pair (D83D DE00) in UTF-16: it sorts before U+FFFF
    assert encode({"\uffff": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\uffff":1}'.encode()


@pytest.mark.parametrize(
    "bad", [1.5, float("nan"), float("inf"), MAX_INT + 1, -MAX_INT - 1, {1: 2}, object(), "\ud800"]
)
def test_unencodable_values_are_refused(bad):
    with pytest.raises(CanonicalError):
        encode(bad)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1}',  # whitespace
        b'{"b":1,"a":2}',  # keys out of order
        b'{"a":1,"a":1}',  # duplicate key
        b'"\\u0041"',  # needless escape
        b'"\\u000A"',  # escape that has a short form
        b"1.0",
        b"1e3",
        b"NaN",
        b"-0",
        b"01",
        b"9007199254740992",  # 2**53
        b'"\xff"',  # not UTF-8
        b"[" * 40 + b"]" * 40,  # too deep
        b"",
    ],
)
def test_non_canonical_bytes_are_refused(text):
    with pytest.raises(CanonicalError):
        decode(text)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_INT, MAX_INT)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=5), children, max_size=4
        )
    ),
    max_leaves=12,
)


@given(json_values)
def test_round_trip_and_agreement_with_json(value):
    data = encode(value)
    assert decode(data) == value
    assert json.loads(data) == value  # it is plain JSON


any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=3), children, max_size=3
        )
    ),
    max_leaves=10,
)
spellings = st.fixed_dictionaries(
    {
        "sort_keys": st.booleans(),
        "ensure_ascii": st.booleans(),
        "separators": st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]),
    }
)


def _canonical_or_none(value):
    try:
        return encode(value)
    except CanonicalError:
        return None


@given(any_json, spellings)
def test_decode_takes_exactly_the_bytes_encode_gives(value, spelling):
    """Whatever path decode takes to check the form (the C encoder for ASCII text, ours
    otherwise), it takes the one canonical spelling and refuses every other."""
    text = json.dumps(value, **spelling).encode()
    if text == _canonical_or_none(value):
        assert decode(text) == value
    else:
        with pytest.raises(CanonicalError):
            decode(text)


@pytest.mark.parametrize("innermost", [[], "x", 7, {"k": None}])
@pytest.mark.parametrize("depth", [30, 31, 32, 33, 34])
def test_nesting_at_the_limit_is_read_as_encode_allows(depth, innermost):
    value = innermost
    for _ in range(depth):
        value = [value]
    text = json.dumps(value, separators=(",", ":")).encode()
    if _canonical_or_none(value) is None:
        with pytest.raises(CanonicalError):
            decode(text)
    else:
        assert decode(text) == value


def test_signed_line_domain_separation_and_strictness():
    ident = device_identity()
    rec = {
        "type": "end",
        "v": 4,
        "suite": "ed25519",
        "device_id": ident.device_id,
        "key_id": ident.key_id,
        "seq": 0,
        "prev_sha256": None,
        "firmware_version": "x",
        "recording_id": "r1",
        "reason": "stopped",
        "end_us": 5,
        "segment_count": 0,
        "recovered": False,
        "counter": None,
    }
    signed = sign_record(ident, rec)
    assert verify_line(signed.line, ident.public_key).record == rec
    record, sig = parse_line(signed.line)
    ident.verify_key().verify(domain("end") + encode(record), sig)
    # the same bytes signed without the domain prefix do not verify as a record
    raw_sig = ident.sign(encode(rec))
    forged = encode({"record": rec, "sig": raw_sig}) + b"\n"
    with pytest.raises(RecordError) as e:
        verify_line(forged, ident.public_key)
    assert e.value.reason == "bad_signature"
    # upper-case hex in the signature is not the canonical spelling
    upper = signed.line.replace(sig.hex().encode(), sig.hex().upper().encode())
    with pytest.raises(RecordError):
        verify_line(upper, ident.public_key)
    with pytest.raises(RecordError):  # a field too many
        sign_record(ident, {**rec, "extra": 1})
