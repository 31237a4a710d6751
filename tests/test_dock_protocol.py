"""The wire protocol on its own: request and answer signatures, receipts, ids."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from dock.protocol import (
    KeySigner,
    ProtocolError,
    chunk_checksum_header,
    is_device_id,
    is_segment_id,
    key_id,
    parse_chunk_checksum,
    parse_signed_headers,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)
from dock.receipts import Receipt, SignedReceipt, sign_receipt

KEY = SigningKey(bytes(range(32)))
PUB = bytes(KEY.verify_key)
NONCE = "0123456789abcdef0123456789abcdef"


def _signed(**kw):
    args = {
        "method": "PATCH",
        "raw_path": "/v1/segments/ab?x=1",
        "body": b"chunk",
        "device_id": "cam-1",
        "timestamp_us": 1_700_000_000_000_000,
        "nonce": NONCE,
    }
    args.update(kw)
    return sign_request(KeySigner(KEY), **args), args


def test_a_signed_request_verifies_and_any_change_breaks_it():
    h, a = _signed()
    assert verify_request(PUB, h, a["method"], a["raw_path"], a["body"])
    assert not verify_request(PUB, h, "POST", a["raw_path"], a["body"])
    assert not verify_request(PUB, h, a["method"], "/v1/segments/ac?x=1", a["body"])
    assert not verify_request(PUB, h, a["method"], a["raw_path"], b"chunk!")
    for field, value in (
        ("timestamp_us", h.timestamp_us + 1),
        ("nonce", "f" * 32),
        ("device_id", "cam-2"),
    ):
        assert not verify_request(
            PUB, dataclasses.replace(h, **{field: value}), a["method"], a["raw_path"], a["body"]
        )
    other = bytes(SigningKey.generate().verify_key)
    assert not verify_request(other, h, a["method"], a["raw_path"], a["body"])


def test_signed_headers_round_trip_and_faults_name_the_header():
    h, _ = _signed()
    assert parse_signed_headers(h.as_dict()) == h
    bad = {**h.as_dict(), "Bwv-Nonce": "not-hex"}
    with pytest.raises(ProtocolError, match="Bwv-Nonce"):
        parse_signed_headers(bad)
    with pytest.raises(ProtocolError, match="Bwv-Signature"):
        parse_signed_headers({k: v for k, v in h.as_dict().items() if k != "Bwv-Signature"})
    with pytest.raises(ProtocolError, match="Bwv-Device"):
        parse_signed_headers({**h.as_dict(), "Bwv-Device": "../etc"})


def test_an_answer_is_bound_to_its_request_nonce_and_status():
    sig = sign_response(KEY, 200, NONCE, b'{"ok":1}')
    assert verify_response(PUB, 200, NONCE, b'{"ok":1}', sig)
    assert not verify_response(PUB, 200, "f" * 32, b'{"ok":1}', sig)  # a replayed answer
    assert not verify_response(PUB, 201, NONCE, b'{"ok":1}', sig)
    assert not verify_response(PUB, 200, NONCE, b'{"ok":2}', sig)
    assert not verify_response(PUB, 200, NONCE, b'{"ok":1}', None)
    assert not verify_response(PUB, 200, NONCE, b'{"ok":1}', "!!")


def _receipt(**kw) -> Receipt:
    fields = {
        "device_id": "cam-1",
        "segment_id": "a" * 64,
        "seq": 3,
        "manifest_sha256": "a" * 64,
        "stored_digest": "b" * 64,
        "stored_size": 10,
        "received_at_us": 5,
        "log_index": 7,
        "log_entry_hash": "c" * 64,
        "leaf_index": 11,
        "gap_before": False,
        "dock_key_id": key_id(PUB),
    }
    fields.update(kw)
    return Receipt(**fields)


def test_receipts_verify_only_with_the_dock_key_and_unchanged():
    signed = sign_receipt(KEY, _receipt())
    again = SignedReceipt.from_json(signed.to_json())
    assert again == signed and again.verify(PUB)
    forged = SignedReceipt(_receipt(stored_digest="d" * 64), signed.signature)
    assert not forged.verify(PUB)
    assert not signed.verify(bytes(SigningKey.generate().verify_key))
    with pytest.raises(ProtocolError):
        SignedReceipt.from_json({"receipt": {"seq": 1}, "signature": ""})


def test_chunk_checksums_are_tus_style_sha256():
    assert parse_chunk_checksum(chunk_checksum_header(b"abc")) == bytes.fromhex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    for bad in (None, "", "md5 AAAA", "sha256 !!", "sha256 AAAA"):
        with pytest.raises(ProtocolError):
            parse_chunk_checksum(bad)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_no_id_can_hold_a_path(text):
    if is_device_id(text):
        assert "/" not in text and "\\" not in text and text not in (".", "..")
        assert not text.startswith(".")
    if is_segment_id(text):
        assert len(text) == 64 and set(text) <= set("0123456789abcdef")


@pytest.mark.parametrize("s", ["../etc", "..", ".", "a/b", "a\\b", "", "a" * 65, "é"])
def test_device_ids_refuse_path_tricks(s):
    assert not is_device_id(s)
