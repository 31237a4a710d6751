"""The outbox hands the shipper its records one at a time (``ChainOutbox.ready``): a step
ships the oldest, and a shift's outbox holds thousands, so a step must not read them all.
Whatever it caches between steps, the records it offers are exactly those not yet shipped,
oldest first, and the newest record always stays (the chain state is rebuilt from it)."""

from __future__ import annotations

import errno
import os
import tempfile
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from crypto.digests import digest_of
from dock.outbox import ChainOutbox, OutboxSegment
from dock.protocol import key_id, segment_id_for
from dock.receipts import Receipt, SignedReceipt, sign_receipt
from dock.testing import OutboxDevice, segment_bytes

DOCK_KEY = SigningKey(bytes(range(32)))


def _device(root: Path, segments: int) -> OutboxDevice:
    dev = OutboxDevice(root / "outbox", "cam-ready")
    for i in range(segments):
        dev.add_segment(segment_bytes(2_000 + i, seed=i))
    return dev


def _ship(outbox: ChainOutbox, seg: OutboxSegment) -> None:
    """What the shipper does with a receipt in hand: keep it, then remove the segment."""
    line = seg.manifest_path.read_bytes()
    sid = segment_id_for(line)
    stored = digest_of(seg.blob_path) if seg.blob_path else None
    digest, size = (stored.hexdigest(), stored.size) if stored else ("0" * 64, 0)
    dock_key_id = key_id(bytes(DOCK_KEY.verify_key))
    fields = ("cam-ready", sid, seg.seq, sid, digest, size, 1, 0, "0" * 64, 0, False, dock_key_id)
    outbox.delete(seg, sign_receipt(DOCK_KEY, Receipt(*fields)))


def test_the_oldest_record_is_handed_out_without_reading_the_ones_behind_it(tmp_path):
    dev = _device(tmp_path, 4)
    broken = dev.root / "chain" / f"{dev.records[2].seq:012d}.manifest.json"
    broken.write_bytes(b"not a record\n")
    outbox = ChainOutbox(dev.root)

    first = next(outbox.ready())

    assert first.seq == 0
    assert outbox.unreadable == {}  # the third record was not looked at
    assert [s.seq for s in outbox.finished()] == [0, 1, 3]
    assert list(outbox.unreadable) == [broken.name]


def test_a_step_looks_at_the_records_it_ships_not_at_the_whole_queue(tmp_path):
    dev = _device(tmp_path, 40)
    outbox = ChainOutbox(dev.root)
    read: list[str] = []
    parse = outbox.verifier.parse
    outbox.verifier.parse = lambda data: read.append(segment_id_for(data)) or parse(data)  # type: ignore[method-assign]

    for expected in range(5):
        seg, ahead = islice(outbox.ready(), 2)
        assert (seg.seq, ahead.seq) == (expected, expected + 1)
        _ship(outbox, seg)

    assert len(read) == 6  # the first two, then one new record a step: never the other 34


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["record", "ship", "peek"]), min_size=1, max_size=30))
def test_what_is_offered_is_exactly_what_is_not_yet_shipped_oldest_first(ops):
    with tempfile.TemporaryDirectory() as tmp:
        dev = _device(Path(tmp), 1)
        outbox = ChainOutbox(dev.root)
        waiting = [0]
        for op in ops:
            if op == "record":
                dev.add_segment(segment_bytes(1_000, seed=len(dev.records)))
                waiting.append(dev.records[-1].seq)
            elif op == "ship" and waiting:
                seg = next(outbox.ready())
                assert seg.seq == waiting.pop(0)
                _ship(outbox, seg)
            elif op == "peek":
                assert [s.seq for s in islice(outbox.ready(), 2)] == waiting[:2]
            assert [s.seq for s in outbox.finished()] == waiting
            newest = f"{dev.records[-1].seq:012d}.manifest.json"
            assert (dev.root / "chain" / newest).exists()  # kept, shipped or not
            kept = {p.name for p in (dev.root / "chain").iterdir()}
            assert kept - {newest} <= {f"{s:012d}.manifest.json" for s in waiting}


def test_a_start_reads_the_receipts_of_what_is_still_here_not_every_one_kept(tmp_path, monkeypatch):
    """The kept receipts grow with every shift; the start's reconcile needs only those of
    the records still in the outbox (a crash between a receipt and its delete)."""
    dev = _device(tmp_path, 3)
    outbox = ChainOutbox(dev.root)
    first = next(outbox.ready())
    assert first.blob_path is not None
    record, stored = first.manifest_path.read_bytes(), first.blob_path.read_bytes()
    _ship(outbox, first)
    kept = next((tmp_path / "receipts").glob("*.json"))
    for i in range(200):  # earlier shifts' receipts
        (kept.parent / f"{i:064x}.json").write_bytes(kept.read_bytes())
    # a crash cut the delete short: the record and its stored file are back
    first.manifest_path.write_bytes(record)
    first.blob_path.write_bytes(stored)
    reads: list[str] = []
    from_json = SignedReceipt.from_json
    monkeypatch.setattr(
        SignedReceipt, "from_json", staticmethod(lambda d: reads.append("r") or from_json(d))
    )

    deleted = ChainOutbox(dev.root).reconcile(bytes(DOCK_KEY.verify_key), "cam-ready")

    assert deleted == [first.blob_path.name] and not first.manifest_path.exists()
    assert len(reads) <= 3  # one a record here, not the 201 kept


def test_a_stored_file_the_card_cannot_look_at_holds_the_queue_not_skipped(tmp_path, monkeypatch):
    """EIO on the oldest segment's file: the step fails (and is tried again later); the
    records behind it do not ship first, and the file is not called missing."""
    dev = _device(tmp_path, 3)
    outbox = ChainOutbox(dev.root)
    oldest = dev.root / "segments" / dev.records[0].record["file"]
    real_stat = os.stat

    def stat(path, *a, **kw):
        if os.fspath(path) == os.fspath(oldest):
            raise OSError(errno.EIO, "Input/output error", os.fspath(path))
        return real_stat(path, *a, **kw)

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(OSError):
        next(outbox.ready())
    assert outbox.unreadable == {}
    monkeypatch.setattr(os, "stat", real_stat)
    assert [s.seq for s in islice(outbox.ready(), 2)] == [0, 1]


def test_a_chain_begun_again_keeps_its_newest_record_when_it_ships(tmp_path):
    """While the oldest record ships, the outbox's chain is set aside and a new one begins
    at 0 (a device provisioned again): the newest record of the step's listing (seq 4) must
    not stand for the new chain's, whose only record is its newest."""
    dev = _device(tmp_path, 5)
    outbox = ChainOutbox(dev.root)
    shipping = next(outbox.ready())  # listed: newest seq 4
    fresh = _device(tmp_path / "fresh", 1)
    for sub in ("chain", "segments"):
        (dev.root / sub).rename(tmp_path / f"old-{sub}")
        (fresh.root / sub).rename(dev.root / sub)

    _ship(outbox, shipping)

    assert shipping.seq == 0
    assert shipping.manifest_path.exists()  # the new chain's newest: its state's source
