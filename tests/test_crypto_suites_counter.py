"""The TPM counter in the chain (crypto/manifest.py) and the verifier's counter rule
(crypto/verify/chain.py): each chain record of a TPM key carries the counter's value after
one increment for it; along the chain each is its predecessor's plus one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.evidence import EvidenceSink
from crypto.manifest import Chain, end_fields
from crypto.records import RecordError
from crypto.suites import ECDSA_P256, ED25519
from crypto.testing import (
    SoftCounter,
    agency_key,
    device_identity,
    make_sink,
    p256_signer,
    write_recording,
)
from crypto.verify import check_chain_record, read_outbox, verify

SIGNER = p256_signer("cam-tpm")
AGENCY = agency_key()


def _chain(tmp: Path, counter: SoftCounter) -> Chain:
    return Chain(tmp / "chain", tmp / "state.json", SIGNER, SIGNER.public_key, counter)


def _end(rec: str, n: int = 0) -> dict:
    return end_fields(
        firmware_version="t",
        recording_id=rec,
        reason="stopped",
        end_us=n,
        segment_count=0,
        recovered=False,
    )


def _counters(outbox: Path) -> list[tuple[int, int | None]]:
    recs = [json.loads(p.read_bytes())["record"] for p in sorted((outbox / "chain").iterdir())]
    return [(r["seq"], r["counter"]) for r in recs]


def _counter_findings(rep) -> list[tuple[str, int, int, int, int]]:
    return [
        (f.kind, f.seq, f.counter, f.prev_seq, f.prev_counter)
        for f in rep.findings
        if f.kind.startswith("counter_")
    ]


def test_a_tpm_key_without_its_counter_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="needs its TPM counter"):
        Chain(tmp_path / "c", tmp_path / "s.json", SIGNER, SIGNER.public_key)
    ed = device_identity("cam-ed")
    with pytest.raises(ValueError, match="has no hardware counter"):
        Chain(tmp_path / "c", tmp_path / "s.json", ed, ed.public_key, SoftCounter())
    with pytest.raises(ValueError, match="needs its TPM counter"):
        EvidenceSink(tmp_path / "o", SIGNER, bytes(AGENCY.public_key), "t", tmp_path / "s")
    assert not (tmp_path / "o" / "trail.jsonl").exists()  # refused before opening a file


def test_each_chain_record_takes_one_count_and_trail_records_none(tmp_path):
    counter = SoftCounter(100)
    sink = make_sink(tmp_path, SIGNER, AGENCY, counter=counter)
    write_recording(sink, "r1", segments=2, fragments=1)
    write_recording(sink, "r2", segments=1, fragments=2)
    sink.close()
    outbox = tmp_path / "outbox"
    assert _counters(outbox) == [(s, 101 + s) for s in range(5)]
    assert counter.value == 105
    for line in (outbox / "trail.jsonl").read_bytes().splitlines():
        r = json.loads(line)["record"]
        assert r["suite"] == ECDSA_P256 and "counter" not in r
    rep = verify(read_outbox(outbox), SIGNER.public_key, AGENCY)
    assert rep.ok and rep.suite == ECDSA_P256 and rep.to_json()["suite"] == ECDSA_P256


def test_an_ed25519_chain_says_counter_null_and_its_report_names_the_suite(tmp_path):
    ed = device_identity("cam-ed")
    sink = make_sink(tmp_path, ed, AGENCY)
    write_recording(sink, "r1", segments=1, fragments=1)
    sink.close()
    assert _counters(tmp_path / "outbox") == [(0, None), (1, None)]
    rep = verify(read_outbox(tmp_path / "outbox"), ed.public_key, AGENCY)
    assert rep.ok and rep.suite == ED25519
    assert all("counter" not in f for f in rep.to_json()["findings"])


def test_a_record_that_cannot_be_signed_does_not_move_the_counter(tmp_path):
    counter = SoftCounter(5)
    chain = _chain(tmp_path, counter)
    with pytest.raises(RecordError):
        chain.append("end", {**_end("r"), "segment_count": -1})
    assert counter.value == 5
    chain.append("end", _end("r"))
    assert counter.value == 6


def test_a_record_lost_after_counting_shows_as_a_gap_of_one(tmp_path, monkeypatch):
    """Power lost between the TPM's increment and the record's write: the next record's
    counter is two above its predecessor's."""
    counter = SoftCounter()
    chain = _chain(tmp_path, counter)
    chain.append("end", _end("r1"))

    def full_disk(*a, **k):
        raise OSError("no space left")

    with monkeypatch.context() as m:
        m.setattr("crypto.manifest.write_atomic", full_disk)
        with pytest.raises(OSError):
            chain.append("end", _end("r2"))
    chain.append("end", _end("r3"))
    files = {f"chain/{p.name}": p.read_bytes() for p in (tmp_path / "chain").iterdir()}
    rep = verify(files, SIGNER.public_key, require_trail=False)
    assert _counter_findings(rep) == [("counter_gap", 1, 3, 0, 1)]
    (f,) = [f for f in rep.findings if f.kind == "counter_gap"]
    assert "1 record the device's TPM counted is not in this chain" in f.detail
    assert not rep.ok


def test_storage_rolled_back_leaves_an_unbroken_chain_and_a_counter_gap(tmp_path):
    """A copy of the card taken after recording 1, put back after recording 2: the device
    signs recording 3 with the same seqs recording 2 had, the TPM's counter moved on."""
    counter = SoftCounter(7)
    sink = make_sink(tmp_path, SIGNER, AGENCY, counter=counter)
    write_recording(sink, "r1", segments=1, fragments=1)  # seqs 0, 1: counters 8, 9
    sink.close()
    shutil.copytree(tmp_path, tmp_path.parent / "snapshot")
    sink = make_sink(tmp_path, SIGNER, AGENCY, counter=counter)
    write_recording(sink, "r2", segments=2, fragments=1)  # seqs 2-4: counters 10-12
    sink.close()
    shutil.rmtree(tmp_path)
    shutil.copytree(tmp_path.parent / "snapshot", tmp_path)  # the rollback
    sink = make_sink(tmp_path, SIGNER, AGENCY, counter=counter)
    write_recording(sink, "r3", segments=1, fragments=1)  # seqs 2, 3: counters 13, 14
    sink.close()
    assert _counters(tmp_path / "outbox") == [(0, 8), (1, 9), (2, 13), (3, 14)]
    rep = verify(read_outbox(tmp_path / "outbox"), SIGNER.public_key, AGENCY)
    assert _counter_findings(rep) == [("counter_gap", 2, 13, 1, 9)]
    assert [f.kind for f in rep.findings] == ["counter_gap"]  # nothing else shows it
    assert not rep.ok and all(r.status == "complete" for r in rep.recordings)


@pytest.fixture(scope="module")
def long_chain(tmp_path_factory) -> dict[str, bytes]:
    """Eight chain records (counters 21..28) with their segments and trail."""
    tmp = tmp_path_factory.mktemp("long")
    sink = make_sink(tmp, SIGNER, AGENCY, counter=SoftCounter(20))
    for i in range(4):
        write_recording(sink, f"r{i}", segments=1, fragments=1)
    sink.close()
    assert _counters(tmp / "outbox") == [(s, 21 + s) for s in range(8)]
    return read_outbox(tmp / "outbox")


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=7), max_size=7))
def test_records_removed_from_a_chain_show_as_gaps_of_the_right_size(long_chain, removed):
    files = {
        n: d
        for n, d in long_chain.items()
        if not (n.startswith("chain/") and int(n[6:18]) in removed)
    }
    rep = verify(files, SIGNER.public_key)
    left = [s for s in range(8) if s not in removed]
    want = [
        ("counter_gap", s, 21 + s, p, 21 + p)
        for p, s in zip(left, left[1:], strict=False)
        if s > p + 1
    ]
    assert _counter_findings(rep) == want
    for f in rep.findings:
        if f.kind == "counter_gap":
            k = f.counter - f.prev_counter - 1
            assert f.counter - f.prev_counter - 1 == f.seq - f.prev_seq - 1
            assert f"{k} record" in f.detail


def test_a_counter_that_repeats_or_goes_back_is_reused(tmp_path):
    for back in (0, 3):  # the same counter again; one below
        counter = SoftCounter(10)
        root = tmp_path / str(back)
        chain = Chain(root / "chain", root / "s.json", SIGNER, SIGNER.public_key, counter)
        chain.append("end", _end("r1"))  # counter 11
        counter.value -= 1 + back
        chain.append("end", _end("r2"))  # counter 11 - back
        files = {f"chain/{p.name}": p.read_bytes() for p in (root / "chain").iterdir()}
        rep = verify(files, SIGNER.public_key, require_trail=False)
        assert _counter_findings(rep) == [("counter_reused", 1, 11 - back, 0, 11)]


def test_a_dock_checking_one_record_at_a_time_applies_the_counter_rule(tmp_path):
    chain = _chain(tmp_path, SoftCounter(1))
    first, _ = chain.append("end", _end("r1"))
    chain.counter.value += 2
    second, _ = chain.append("end", _end("r2"))
    one = check_chain_record(first.line, SIGNER.public_key, None)
    assert one.ok and one.counter == 2
    ok_alone = check_chain_record(second.line, SIGNER.public_key, first.sha256)
    assert ok_alone.ok and ok_alone.counter == 5
    gap = check_chain_record(second.line, SIGNER.public_key, first.sha256, previous_counter=2)
    assert not gap.ok and gap.problems[0].startswith("counter_gap: ")
    reused = check_chain_record(second.line, SIGNER.public_key, first.sha256, previous_counter=5)
    assert not reused.ok and reused.problems[0].startswith("counter_reused: ")
