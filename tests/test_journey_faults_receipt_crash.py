"""Issue 8, point 21: the dock's receipt was kept, then the device died before deleting.

Real receipts from a real dock on loopback; the crash falls between keeping the receipt and
deleting the segment. At the next start the segment is deleted (its receipt is valid for its
exact bytes) and `bwv status` no longer counts it as waiting to ship; a receipt that does
not vouch for the bytes here deletes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from bwv.status_cmd import outbox_facts
from capture.clock import VirtualClock
from dock.client import DockClient
from dock.protocol import canonical_json
from dock.receipts import SignedReceipt, sign_receipt
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, segment_bytes

FAST = ShipperConfig(chunk_bytes=8 << 10, jitter=0.0)


class PowerCut(BaseException):
    """The device dies (nothing in the shipper may catch this)."""


class DiesAfterTheReceipt(ChainOutbox):
    """Keeps the receipt durably, as the real outbox does, then the power goes."""

    def delete(self, segment, receipt: SignedReceipt) -> None:
        self.receipts.mkdir(parents=True, exist_ok=True)
        kept = self.receipts / f"{receipt.receipt.segment_id}.json"
        kept.write_bytes(canonical_json(receipt.to_json()) + b"\n")
        raise PowerCut


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"))
    yield h
    h.close()


def _wall() -> int:
    import time

    return time.time_ns() // 1000


def _device(harness, storage: Path, name: str) -> OutboxDevice:
    dev = OutboxDevice(storage / "outbox", name)
    dev.creds = harness.enroll(dev)
    for i in range(3):
        dev.add_segment(segment_bytes(30_000 + i, i))
    dev.end_recording()
    return dev


def _shipper(harness, dev, outbox: ChainOutbox, docked=True) -> Shipper:
    client = DockClient(harness.url, dev.creds, wall_clock=_wall, timeout=10.0)
    return Shipper(outbox, client, VirtualClock(), config=FAST, docked=lambda: docked)


def _crash_after_first_receipt(harness, dev) -> Path:
    seg = dev.root / "segments" / "rec1_0000.bwvseg"
    with pytest.raises(PowerCut):
        _shipper(harness, dev, DiesAfterTheReceipt(dev.root)).step()
    assert seg.is_file(), "the crash came before the delete"
    assert harness.dock.store.held_segment(dev.device_id, seq=0) is not None
    return seg


def test_a_segment_with_a_kept_receipt_is_deleted_at_the_next_start(harness, tmp_path):
    storage = tmp_path / "bwv"
    dev = _device(harness, storage, "cam-rc-1")
    seg = _crash_after_first_receipt(harness, dev)
    assert outbox_facts(storage)["segments"] == 3  # `bwv status` before: "to ship: 3"

    # the next start: the shipper starts while the camera is not even docked
    shipper = _shipper(harness, dev, ChainOutbox(dev.root), docked=False)
    assert shipper.step().action == "undocked"
    assert not seg.exists()
    assert outbox_facts(storage)["segments"] == 2  # only what never shipped is counted
    assert not (dev.root / "chain" / "000000000000.manifest.json").exists()

    # docked again: the rest ships, and nothing is sent twice
    shipper.docked = lambda: True
    reports = shipper.drain()
    assert [r.action for r in reports] == ["shipped"] * 3 + ["idle"], reports
    assert outbox_facts(storage)["segments"] == 0
    held = harness.dock.store.held_segments(dev.device_id)
    assert [h.segment_id for h in held] == [r.sha256 for r in dev.records]
    received = [
        e.segment_id
        for e in harness.dock.store.custody_log(limit=100_000)
        if e.action == "received" and e.device_id == dev.device_id
    ]
    assert len(received) == len(set(received)) == 4


def test_a_stored_file_left_without_its_record_is_deleted_by_its_receipt(harness, tmp_path):
    """An older shipper removed the record at its next look and left the file for ever."""
    storage = tmp_path / "bwv"
    dev = _device(harness, storage, "cam-rc-2")
    seg = _crash_after_first_receipt(harness, dev)
    (dev.root / "chain" / "000000000000.manifest.json").unlink()
    _shipper(harness, dev, ChainOutbox(dev.root), docked=False).step()
    assert not seg.exists()
    assert outbox_facts(storage)["segments"] == 2


def test_a_receipt_that_does_not_vouch_for_these_bytes_deletes_nothing(harness, tmp_path):
    storage = tmp_path / "bwv"
    dev = _device(harness, storage, "cam-rc-3")
    seg = _crash_after_first_receipt(harness, dev)
    (receipt_file,) = (storage / "receipts").glob("*.json")
    good = SignedReceipt.from_json(json.loads(receipt_file.read_bytes()))

    # the bytes here are not the ones the dock received: the file stays
    original = seg.read_bytes()
    seg.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    _shipper(harness, dev, ChainOutbox(dev.root), docked=False).step()
    assert seg.is_file()

    # a receipt signed by another key than the pinned dock's: the file stays
    seg.write_bytes(original)
    forged = sign_receipt(SigningKey.generate(), good.receipt)
    receipt_file.write_text(json.dumps(forged.to_json()))
    _shipper(harness, dev, ChainOutbox(dev.root), docked=False).step()
    assert seg.is_file()
    assert outbox_facts(storage)["segments"] == 3
