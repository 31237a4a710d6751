"""The dock's store on its own: custody log, chain report, tokens, nonces, key files."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from dock.custody import verify_custody_log
from dock.enroll import issue_token, token_hash
from dock.keys import KeyFileError, load_or_create_signing_key, load_or_create_token
from dock.store import HeldSegment, StoreError, chain_report
from dock.store_sqlite import INDEX_FILE, DirectoryStore

KEY = SigningKey(bytes(range(1, 33)))
PUB = bytes(KEY.verify_key)


@pytest.fixture
def store(tmp_path):
    s = DirectoryStore(tmp_path / "dock", KEY)
    yield s
    s.close()


def _fill_log(store, n=5):
    for i in range(n):
        store.log("technician", "note", 1000 + i, detail={"i": i})


def test_custody_log_is_a_signed_hash_chain(store):
    _fill_log(store)
    entries = store.custody_log()
    assert [e.index for e in entries] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.entry_hash for a, b in zip(entries, entries[1:], strict=False))
    assert verify_custody_log(entries, PUB) == []
    assert verify_custody_log(entries, bytes(SigningKey.generate().verify_key))


@pytest.mark.parametrize(
    "tamper, expect",
    [
        ("UPDATE custody_log SET detail='{\"i\":9}' WHERE idx=3", "entry 3: content"),
        ("DELETE FROM custody_log WHERE idx=2", "entry 3: expected index 2"),
        ("UPDATE custody_log SET actor='someone' WHERE idx=5", "entry 5: content"),
    ],
)
def test_an_edited_or_shortened_custody_log_is_detected(store, tamper, expect):
    _fill_log(store)
    db = sqlite3.connect(store.root / INDEX_FILE)
    db.execute(tamper)
    db.commit()
    db.close()
    problems = verify_custody_log(store.custody_log(), PUB)
    assert any(p.startswith(expect) for p in problems), problems


def _held(seqs, breaks=()):
    out = []
    for s in sorted(seqs):
        prev = None if s == 0 else f"{s - 1:064x}"
        if s in breaks:
            prev = "f" * 64
        out.append(HeldSegment(f"{s:064x}", s, f"{s:064x}", prev, "0" * 64, 0, 0))
    return out


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(0, 40), max_size=30))
def test_chain_report_names_exactly_the_missing_sequence_numbers(seqs):
    report = chain_report(_held(seqs))
    missing = {n for a, b in report.gaps for n in range(a, b + 1)}
    top = max(seqs) if seqs else -1
    assert missing == set(range(top + 1)) - seqs
    assert report.held == len(seqs) and report.breaks == []


def test_chain_report_names_a_record_that_does_not_link():
    report = chain_report(_held({0, 1, 2, 3}, breaks={2}))
    assert report.gaps == [] and report.breaks == [2]


def test_enrollment_tokens_are_one_time_bound_and_expire(store):
    t = issue_token(store, 0, device_id="cam-1", ttl_s=60)
    with pytest.raises(StoreError, match="another device"):
        store.enroll("cam-2", PUB, token_hash(t.token), 1)
    store.enroll("cam-1", PUB, token_hash(t.token), 1)
    with pytest.raises(StoreError, match="used"):
        store.enroll("cam-1", PUB, token_hash(t.token), 2)
    late = issue_token(store, 0, device_id="cam-3", ttl_s=1)
    with pytest.raises(StoreError, match="expired"):
        store.enroll("cam-3", PUB, token_hash(late.token), 2_000_000)
    actions = [e.action for e in store.custody_log()]
    assert actions == ["token_issued", "enrolled", "token_issued"]
    # the token itself is in neither the index nor the log
    assert t.token.encode() not in (store.root / INDEX_FILE).read_bytes()


def test_a_nonce_is_accepted_once(store):
    assert store.use_nonce("cam-1", "a" * 32, 0, 100)
    assert not store.use_nonce("cam-1", "a" * 32, 50, 100)
    assert store.use_nonce("cam-2", "a" * 32, 50, 100)


def test_key_files_are_0600_and_wider_ones_refused(tmp_path):
    key = load_or_create_signing_key(tmp_path / "dock.key")
    assert load_or_create_signing_key(tmp_path / "dock.key").encode() == key.encode()
    token = load_or_create_token(tmp_path / "admin.token")
    for name in ("dock.key", "admin.token"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path / "admin.token") == token
    os.chmod(tmp_path / "dock.key", 0o644)
    with pytest.raises(KeyFileError, match="0600"):
        load_or_create_signing_key(tmp_path / "dock.key")
