"""Issue 14, what the people who run a dock see of their cameras (dock/fleet.py): each
camera's signed report (firmware, battery, storage, queue) reaches the dock at the start of
a shipping round and shows on its camera row; a forged or malformed report is refused and
kept nowhere; a dock that does not know the report still takes the footage; the uploads
under way show their progress and rate by the dock's clock, a stalled one stands out, and a
refusal shows its reason."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from base.clock import VirtualClock
from bwv.cli import main
from crypto.identity import DeviceIdentity
from crypto.testing import seed
from dock.client import DockRefused, DockUnavailable
from dock.device_report import FixedBattery, Reporter
from dock.fleet import camera_rows, upload_rows
from dock.outbox import ChainOutbox
from dock.protocol import Code, segment_id_for
from dock.server import ServerThread, create_app, open_dock, wall_clock_us
from dock.shipper import Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, declared_digest, segment_bytes
from dock.tls import ensure_tls_files

FAST = ShipperConfig(backoff_initial_s=0.001, backoff_max_s=0.001, jitter=0.0)


class DockClock:
    """The dock's clock: stands at the real time the test began (device requests are
    stamped near it, well within the dock's window) and moves only when the test says."""

    def __init__(self) -> None:
        self.start_us = wall_clock_us()
        self.skew_us = 0

    def __call__(self) -> int:
        return self.start_us + self.skew_us

    def advance_s(self, s: float) -> None:
        self.skew_us += int(s * 1_000_000)


@pytest.fixture
def dock_clock():
    return DockClock()


@pytest.fixture
def harness(tmp_path, dock_clock):
    h = DockHarness(tmp_path / "dock", clock=dock_clock)
    yield h
    h.close()


def _camera(harness, tmp_path, name="cam-fleet-1", segments=(3000, 2000)):
    dev = OutboxDevice(tmp_path / name, name)
    for i, n in enumerate(segments):
        dev.add_segment(segment_bytes(n, i))
    return dev, harness.enroll(dev)


def _row(rows, device_id):
    (row,) = [r for r in rows if r.device_id == device_id]
    return row


def test_a_cameras_report_arrives_signed_and_shows_on_its_row(harness, tmp_path):
    dev, creds = _camera(harness, tmp_path)
    outbox = ChainOutbox(dev.root)
    store, activity = harness.dock.store, harness.dock.activity
    before = _row(camera_rows(store, activity, harness.clock()), dev.device_id)
    assert before.battery_percent is None and before.queued_segments is None
    assert before.clock_quality == "never" and before.reported_at_us is None

    reporter = Reporter(outbox, battery=FixedBattery(73))
    with harness.client(creds) as client:
        shipper = Shipper(outbox, client, VirtualClock(), config=FAST, reporter=reporter)
        first = shipper.step()
        assert first.action == "shipped"
        # the report went at the start of the round: both segments were still queued
        report = store.device_report(dev.device_id)
        assert report["queued_segments"] == 2 and report["queued_bytes"] == 5000
        row = _row(camera_rows(store, activity, harness.clock()), dev.device_id)
        assert row.battery_percent == 73
        assert (row.firmware_version, row.firmware_source) == ("test", "report")
        assert row.storage_total_bytes and 0 < row.storage_free_bytes <= row.storage_total_bytes
        assert row.queued_segments == 2 and row.oldest_queued_wall_us == 0
        assert row.clock_quality.startswith("synced ") and row.clock_quality.endswith(" s ago")
        assert row.last_seen_us is not None and row.reported_at_us is not None
        assert not row.revoked

        assert [r.action for r in shipper.drain()] == ["shipped", "idle"]
    # the round emptied the camera: it said so
    assert store.device_report(dev.device_id)["queued_segments"] == 0
    up = _row(upload_rows(store, activity, harness.clock()), dev.device_id)
    assert up.state == "idle" and up.docked and up.queued_segments == 0
    assert [r.size for r in up.receipted] == [2000, 3000]  # newest first
    assert [r.recording_id for r in up.receipted] == ["rec1", "rec1"]
    # telemetry, not custody: the log has no entry for it
    assert not [e for e in store.custody_log() if "report" in e.action]


def test_a_forged_or_malformed_report_is_refused_and_kept_nowhere(harness, tmp_path):
    dev, creds = _camera(harness, tmp_path, segments=())
    store = harness.dock.store
    good = Reporter(ChainOutbox(dev.root)).build()

    impostor = DeviceIdentity(dev.device_id, SigningKey(seed("not the camera")))
    forged = creds.__class__(dev.device_id, impostor, creds.dock_public_key)
    with harness.client(forged) as client, pytest.raises(DockRefused) as refused:
        client.report({**good, "battery_percent": 5})
    assert refused.value.status == 401 and refused.value.code == Code.BAD_SIGNATURE

    unsigned = httpx.post(f"{harness.url}/v1/device/report", json=good, verify=harness.verify)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == Code.UNSIGNED

    with harness.client(creds) as client:
        for bad in (
            {**good, "battery_percent": 150},
            {**good, "storage_free_bytes": 10, "storage_total_bytes": 5},
            {**good, "queued_segments": True},
            {**good, "footage": "x"},
        ):
            with pytest.raises(DockRefused) as refused:
                client.report(bad)
            assert refused.value.status == 422, bad
    assert store.device_report(dev.device_id) is None

    with harness.client(creds) as client:
        ack = client.report({**good, "battery_percent": 41})
    assert ack["device_id"] == dev.device_id
    assert store.device_report(dev.device_id)["battery_percent"] == 41


def test_the_api_describes_the_signed_report(harness):
    spec = httpx.get(f"{harness.url}/openapi.json", verify=harness.verify).json()
    op = spec["paths"]["/v1/device/report"]["post"]
    headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
    assert {"Bwv-Signature", "Content-Digest", "Bwv-Device", "Bwv-Nonce"} <= headers
    body = spec["components"]["schemas"]["DeviceReport"]["properties"]
    assert set(body) == {
        "firmware_version",
        "battery_percent",
        "storage_free_bytes",
        "storage_total_bytes",
        "queued_segments",
        "queued_bytes",
        "oldest_queued_wall_us",
    }


def _older_dock(harness):
    """The harness's dock as one from before the report: ``/v1/device/report`` unknown
    (its answer, a 404, still signed by the dock)."""
    app = create_app(harness.dock)

    async def older(scope, receive, send):
        if scope.get("path") == "/v1/device/report":
            scope = {**scope, "path": "/v1/no-such-endpoint", "raw_path": b"/v1/no-such-endpoint"}
        await app(scope, receive, send)

    return ServerThread(older, tls=ensure_tls_files(harness.store_dir, harness.dock.key))


def test_a_dock_that_does_not_know_the_report_still_takes_the_footage(harness, tmp_path):
    dev, creds = _camera(harness, tmp_path)
    clock = VirtualClock()
    with _older_dock(harness) as older, harness.client(creds, url=older.url) as client:
        calls = []
        real_report = client.report
        client.report = lambda r: calls.append(r) or real_report(r)
        shipper = Shipper(ChainOutbox(dev.root), client, clock, config=FAST)
        assert [r.action for r in shipper.drain()] == ["shipped", "shipped", "idle"]
        assert len(calls) == 1  # asked once: a 404, and not again within the hour
        clock.advance(600 * 1_000_000)
        assert shipper.step().action == "idle"
        assert len(calls) == 1
    assert "404" in (shipper.reporter.last_error or "")
    store = harness.dock.store
    assert len(store.held_segments(dev.device_id)) == 2
    row = _row(camera_rows(store, harness.dock.activity, harness.clock()), dev.device_id)
    # no report: the firmware comes from the records the camera signed, the rest is unknown
    assert (row.firmware_version, row.firmware_source) == ("test", "record")
    assert row.battery_percent is None and row.queued_segments is None


def test_a_dock_that_cannot_take_the_report_does_not_stop_shipping(harness, tmp_path):
    dev, creds = _camera(harness, tmp_path)
    with harness.client(creds) as client:

        def down(report):
            raise DockUnavailable("POST /v1/device/report: ConnectError")

        client.report = down
        shipper = Shipper(ChainOutbox(dev.root), client, VirtualClock(), config=FAST)
        assert [r.action for r in shipper.drain()] == ["shipped", "shipped", "idle"]
    assert len(harness.dock.store.held_segments(dev.device_id)) == 2


def test_upload_progress_and_rate_follow_the_docks_clock(harness, tmp_path, dock_clock):
    dev, creds = _camera(harness, tmp_path, segments=(4000,))
    store, activity = harness.dock.store, harness.dock.activity
    seen = []
    with harness.client(creds) as client:
        real_append = client.append

        def paced(segment_id, offset, chunk, *rest):  # one chunk a second, by the dock's clock
            dock_clock.advance_s(1)
            state = real_append(segment_id, offset, chunk, *rest)
            seen.append(upload_rows(store, activity, harness.clock(), stalled_s=60))
            return state

        client.append = paced
        config = ShipperConfig(chunk_bytes=1000, jitter=0.0)
        shipper = Shipper(ChainOutbox(dev.root), client, VirtualClock(), config=config)
        assert shipper.step().action == "shipped"
    mid = _row(seen[1], dev.device_id)
    assert mid.state == "uploading" and mid.queued_segments == 1
    (up,) = mid.uploading
    assert (up.offset, up.size, up.fraction) == (2000, 4000, 0.5)
    assert up.rate_bytes_s == 1000  # 2000 bytes in 2 s
    assert not up.stalled and up.last_error is None
    done = _row(upload_rows(store, activity, harness.clock()), dev.device_id)
    assert done.uploading == [] and [r.size for r in done.receipted] == [4000]


def test_a_stalled_upload_stands_out_with_why(harness, tmp_path, dock_clock):
    dev, creds = _camera(harness, tmp_path, segments=(4000,))
    store, activity = harness.dock.store, harness.dock.activity
    manifest = dev.records[0].line
    blob = segment_bytes(4000, 0)
    sid = segment_id_for(manifest)
    with harness.client(creds) as client:
        client.sync_time()
        client.create_upload(sid, manifest, 4000, declared_digest(blob))
        client.append(sid, 0, blob[:1000])
        with pytest.raises(DockRefused):  # a retried chunk: routine, not a failure
            client.append(sid, 0, blob[:1000])
    dock_clock.advance_s(30)
    row = _row(upload_rows(store, activity, harness.clock(), stalled_s=60), dev.device_id)
    assert row.state == "uploading" and not row.failing
    assert row.uploading[0].rate_bytes_s == 0  # nothing in the last few seconds
    dock_clock.advance_s(31)
    row = _row(upload_rows(store, activity, harness.clock(), stalled_s=60), dev.device_id)
    assert row.state == "stalled" and row.stalled
    assert row.reason == "no bytes for 61 s (1000 of 4000 bytes held)"


def test_a_refusal_shows_its_reason(tmp_path, dock_clock):
    agency = PrivateKey(seed("agency")).public_key
    harness = DockHarness(tmp_path / "dock", clock=dock_clock, agency_public_key=bytes(agency))
    try:
        dev = OutboxDevice(tmp_path / "cam", "cam-swapped", agency_key_id="ab" * 8)
        dev.add_segment(segment_bytes(1000, 1))
        creds = harness.enroll(dev)
        with harness.client(creds) as client:
            reports = Shipper(ChainOutbox(dev.root), client, VirtualClock(), config=FAST).drain()
        assert reports[0].action == "refused"
        store, activity = harness.dock.store, harness.dock.activity
        row = _row(upload_rows(store, activity, harness.clock()), dev.device_id)
        assert row.state == "failing" and row.uploading == []
        assert row.reason.startswith("refused 0 s ago: 422 wrong_agency_key: segment refused")
        assert row.queued_segments == 1  # still on the camera, as it reported
    finally:
        harness.close()


def test_revoked_cameras_are_apart_and_clock_quality_ages(harness, tmp_path, dock_clock):
    dev, creds = _camera(harness, tmp_path, segments=())
    with harness.client(creds) as client:
        client.sync_time()
    dock_clock.advance_s(180)
    store, activity = harness.dock.store, harness.dock.activity
    row = _row(camera_rows(store, activity, harness.clock()), dev.device_id)
    assert row.clock_quality == "synced 3 min ago" and row.clock_offset_us is not None
    store.revoke(dev.device_id, "lost on patrol", "technician", harness.clock())
    row = _row(camera_rows(store, activity, harness.clock()), dev.device_id)
    assert row.revoked and row.revoke_reason == "lost on patrol"
    assert upload_rows(store, activity, harness.clock()) == []


def test_the_simulated_camera_reports_its_battery_at_the_dock(tmp_path):
    out = tmp_path / "raid"
    raid = ["--pre-record", "1", "--record", "2", "--size", "320x240", "--fps", "15"]
    result = CliRunner().invoke(main, ["sim", "raid", "--out", str(out), *raid])
    assert result.exit_code == 0, result.output
    dock = open_dock(out / "dock")
    try:
        (row,) = camera_rows(dock.store, dock.activity, dock.clock())
        # the twin's battery drains from full at power-on: a short raid leaves most of it
        assert row.battery_percent is not None and 90 <= row.battery_percent <= 100
        assert row.firmware_version and row.firmware_source == "report"
        assert row.queued_segments == 0  # it reported its outbox emptied
        assert row.storage_free_bytes and row.storage_total_bytes
    finally:
        dock.store.close()
