"""The dock's log with a real witness (bwv's own, served on loopback) and a real RFC 3161 TSA
(``openssl ts -reply`` behind bwv's TSA server): checkpoints are cosigned and time-stamped,
and a camera pinning the witness deletes what it shipped."""

from __future__ import annotations

import hashlib
import json

import pytest

from capture.clock import VirtualClock
from dock.checkpoints import latest_checkpoint, log_dir
from dock.client import DockClient
from dock.log_proof import WitnessPolicy
from dock.outbox import ChainOutbox
from dock.shipper import Shipper, ShipperConfig
from dock.testing import OutboxDevice, segment_bytes, witnessed_dock
from tlog.note import split_note
from tsa.verify import verify_token
from witness.client import WitnessClient


def _wall() -> int:
    import time

    return time.time_ns() // 1000


@pytest.fixture
def world(tmp_path):
    with witnessed_dock(tmp_path) as (h, v):
        h.witness_url, h.witness_vkey, h.ca_pem, h.origin = (
            v.witness_url,
            v.witness_vkey,
            v.tsa_ca_pem,
            v.origin,
        )
        yield h


def ship(h, root, name, segments=2):
    dev = OutboxDevice(root / name, name)
    dev.creds = h.enroll(dev)
    for i in range(segments):
        dev.add_segment(segment_bytes(3000 + i, i))
    dev.end_recording()
    client = DockClient(h.url, dev.creds, wall_clock=_wall, timeout=10)
    policy = WitnessPolicy((h.witness_vkey,))
    sh = Shipper(
        ChainOutbox(dev.root), client, VirtualClock(), config=ShipperConfig(), witnesses=policy
    )
    reports = [sh.step() for _ in range(len(dev.records) + 2)]
    return dev, reports


def test_checkpoints_are_cosigned_by_the_witness_and_time_stamped(world, tmp_path):
    dev, reports = ship(world, tmp_path, "cam-w1")
    assert [r.action for r in reports].count("shipped") == len(dev.records)
    assert list((dev.root / "segments").iterdir()) == []
    cp = latest_checkpoint(world.store_dir)
    body, sigs = split_note(cp.note)
    assert {s.name for s in sigs} == {world.origin, "watchdog.test/w1"}
    # the witness holds the same checkpoint, and says so to anyone who asks
    with WitnessClient(world.witness_url) as wc:
        held = wc.latest(world.origin)
    assert held is not None and split_note(held)[0] == body
    # the TSA's token is over SHA-256 of the body, and checks against its CA
    assert (log_dir(world.store_dir) / "checkpoint.tsr").read_bytes() == cp.token
    gen_us = verify_token(cp.token, hashlib.sha256(body.encode()).digest(), world.ca_pem)
    assert abs(gen_us - _wall()) < 120_000_000
    receipts = sorted((dev.root.parent / "receipts").glob("*.json"))
    proof = json.loads(receipts[-1].read_bytes())["proof"]
    assert proof["tsa_token"] is not None
    status = world.dock.translog.status()
    assert status["unwitnessed"] is False and status["untimestamped"] is False
    assert status["witnesses"][0]["cosigned_latest"] is True


def test_a_dock_that_forgot_what_the_witness_holds_catches_up_on_its_409(world, tmp_path):
    ship(world, tmp_path, "cam-a", segments=1)
    (log_dir(world.store_dir) / "witnesses.json").unlink()  # as if lost: the dock says 0
    world.restart()
    dev, reports = ship(world, tmp_path, "cam-b", segments=1)
    assert [r.action for r in reports].count("shipped") == len(dev.records)
    sigs = split_note(latest_checkpoint(world.store_dir).note)[1]
    assert "watchdog.test/w1" in {s.name for s in sigs}
