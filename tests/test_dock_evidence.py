"""End to end with crypto/'s real evidence sink: a camera's outbox, shipped to the dock,
exported again and checked by crypto/'s offline verifier (decrypting with the agency key)."""

from __future__ import annotations

import json
import time

from capture.clock import VirtualClock
from crypto import testing as ct
from crypto.verify import read_outbox, verify
from dock.client import DeviceCredentials, DockClient, enroll
from dock.custody import verify_custody_log
from dock.export import export_custody_log, export_device
from dock.shipper import ChainOutbox, Shipper
from dock.store import LogEntry
from dock.testing import DockHarness


def _wall() -> int:
    return time.time_ns() // 1000


def test_a_recorded_outbox_reaches_the_dock_whole_and_verifiable(tmp_path):
    harness = DockHarness(tmp_path / "dock")
    try:
        ident, agency = ct.device_identity("cam-e2e"), ct.agency_key()
        sink = ct.make_sink(tmp_path / "dev", ident, agency)
        ct.write_recording(sink, "rec1", 3, 2)
        ct.write_recording(sink, "rec2", 1, 1, reason="storage_fault")
        sink.close()
        outbox = tmp_path / "dev" / "outbox"
        got = enroll(
            harness.url,
            ident.device_id,
            ident,
            ident.public_key,
            harness.token(ident.device_id),
            wall_clock=_wall,
            expected_dock_key=harness.public_key,
        )
        creds = DeviceCredentials(ident.device_id, ident, got.dock_public_key)
        clock = VirtualClock()
        with DockClient(harness.url, creds, wall_clock=_wall) as client:
            reports = Shipper(ChainOutbox(outbox), client, clock).drain()
        assert [r.action for r in reports] == ["shipped"] * 6 + ["idle"]
        # on the device: no stored segment left; the newest chain record and the trail stay
        assert not list((outbox / "segments").iterdir())
        assert [p.name for p in (outbox / "chain").iterdir()] == ["000000000005.end.json"]
        assert (outbox / "trail.jsonl").exists()
        assert len(list((tmp_path / "dev" / "receipts").iterdir())) == 6

        export_device(harness.dock.store, ident.device_id, tmp_path / "export")
        report = verify(
            read_outbox(tmp_path / "export"),
            ident.public_key,
            agency,
            device_id=ident.device_id,
            require_trail=False,
        )
        assert [f.kind for f in report.findings] == ["ended_early"], report.findings
        assert [s.status for s in report.segments] == ["authentic"] * 4
        assert [(r.recording_id, r.status) for r in report.recordings] == [
            ("rec1", "complete"),
            ("rec2", "ended_early"),
        ]

        n = export_custody_log(harness.dock.store, tmp_path / "custody.jsonl")
        entries = [
            LogEntry(**json.loads(line))
            for line in (tmp_path / "custody.jsonl").read_text().splitlines()
        ]
        assert len(entries) == n
        assert verify_custody_log(entries, harness.public_key) == []
        received = [e for e in entries if e.action == "received"]
        assert [e.detail["seq"] for e in received] == list(range(6))
    finally:
        harness.close()
