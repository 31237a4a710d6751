"""Time on the device, over a real dock (and a real RFC 3161 TSA on loopback): every sync is
signed into the camera's chain; a dock's word alone cannot move the camera's clock by more
than the step limit; a true large step backed by a token from the TSA the camera pinned is
applied and recorded as a ``clock_step``; small corrections are applied and recorded.

The simulated camera records through its real segment writer and evidence sink; the dock's
clock is injected (``DockClock``); the capture clock is virtual. Nothing sleeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from base.clock import VirtualClock
from bwv.selftest.time_sync import check_time_sync
from capture.config import from_dict
from crypto.verify import verify
from dock.client import DeviceCredentials, DockClient, TimeSync, enroll
from dock.clockstate import CLOCK_STATE, read_clock_state
from dock.clocksync import ClockKeeper, ClockPolicy, SyncOutcome
from dock.export import device_holdings, find_recording, outbox_files, verify_recording
from dock.server import wall_clock_us
from dock.shipper import ChainOutbox, Shipper
from dock.testing import DockHarness
from simulator.device import SimDevice, make_device
from tests.conftest import SMALL

S = 1_000_000
DAY = 86_400 * S
Y2019 = 1_546_300_800 * S  # 2019-01-01 00:00:00 UTC


@dataclass
class DockClock:
    """The dock's clock: the real one, or whatever a test (or a dock's operator) sets."""

    fixed_us: int | None = None

    def __call__(self) -> int:
        return self.fixed_us if self.fixed_us is not None else wall_clock_us()


@dataclass
class _Capture:
    dev: SimDevice

    def now_us(self) -> int:
        return self.dev.now_us


@pytest.fixture
def dock(tmp_path):
    clock = DockClock()
    h = DockHarness(tmp_path / "dock", clock=clock)
    h.dock_clock = clock  # type: ignore[attr-defined]
    yield h
    h.close()


def camera(tmp_path: Path, wall_behind_us: int = 0) -> SimDevice:
    """A simulated camera whose wall clock is ``wall_behind_us`` behind the real time."""
    cfg = from_dict({**SMALL, "controls": {"hold_to_stop_s": 0.5}, "storage": {"dir": "x"}})
    return make_device(cfg, tmp_path / "device", wall_epoch_us=wall_clock_us() - wall_behind_us)


def record(dev: SimDevice, seconds: float = 3.0) -> None:
    """One recording: a press, ``seconds`` of footage, a hold to stop."""
    t = dev.now_us + 3 * S  # the pre-record buffer fills first
    dev.run_until(t)
    dev.button(down=True)
    dev.run_until(t + S // 10)
    dev.button(down=False)
    dev.run_until(t + int(seconds * S))
    dev.button(down=True)
    dev.run_until(dev.now_us + S)
    dev.button(down=False)
    dev.run_until(dev.now_us + S)


def enrol(h: DockHarness, dev: SimDevice) -> DeviceCredentials:
    ident = dev.keys.identity
    got = enroll(
        h.url,
        ident.device_id,
        ident,
        ident.public_key,
        h.token(ident.device_id),
        wall_clock=wall_clock_us,
        expected_dock_key=h.public_key,
    )
    return DeviceCredentials(ident.device_id, ident, got.dock_public_key)


def dock_visit(
    h: DockHarness, dev: SimDevice, creds: DeviceCredentials, policy: ClockPolicy, state: Path
) -> list[SyncOutcome]:
    """The camera in its dock: its shipper syncs time (the keeper decides) and ships."""
    keeper = ClockKeeper(dev.sink.chain, dev.wall, _Capture(dev), policy, state_path=state)
    outcomes: list[SyncOutcome] = []
    device_wall = lambda: dev.wall.wall_us(dev.now_us)  # noqa: E731
    with DockClient(h.url, creds, wall_clock=device_wall) as client:

        def on_time(sync: TimeSync) -> None:
            out = keeper.on_time(sync)
            outcomes.append(out)
            if out.applied:
                client.offset_us = 0

        reports = Shipper(ChainOutbox(dev.storage.root), client, VirtualClock(), on_time=on_time)
        assert [r.action for r in reports.drain()][-1] == "idle"
    return outcomes


def held_records(h: DockHarness, dev: SimDevice) -> list[dict]:
    holdings = device_holdings(h.dock.store, dev.keys.identity.device_id)
    return [r.fields.raw for r in holdings.records]


def dock_report(h: DockHarness, dev: SimDevice):
    device_id = dev.keys.identity.device_id
    holdings = device_holdings(h.dock.store, device_id)
    files = outbox_files(h.dock.store, device_id, holdings.records)
    return verify(
        files, dev.keys.identity.public_key, require_trail=False, dock_public_key=h.public_key
    )


def test_a_dock_whose_clock_says_2019_cannot_move_the_camera_back(dock, tmp_path):
    dev = camera(tmp_path)
    creds = enrol(dock, dev)
    record(dev)
    before = dev.wall.wall_us(dev.now_us)
    dock.dock_clock.fixed_us = Y2019 + 12 * 3_600 * S
    state = tmp_path / CLOCK_STATE
    [out] = dock_visit(dock, dev, creds, ClockPolicy(), state)
    # refused: the clock did not move, and it is not labelled synced
    assert not out.applied and "no RFC 3161 token" in (out.refused or "")
    assert out.offset_us < -2_000 * DAY
    assert dev.wall.wall_us(dev.now_us) == before
    assert dev.wall.quality == "unsynced" and dev.wall.last_sync_seq is None
    # recorded, signed, and held by the dock as a chain record of the device
    syncs = [r for r in held_records(dock, dev) if r["type"] == "time_sync"]
    assert len(syncs) == 1 and syncs[0]["applied"] is False
    assert syncs[0]["dock_time_us"] == dock.dock_clock.fixed_us and syncs[0]["tsa_token"] is None
    # never silently: the technician sees it (bwv status / selftest read the same state)
    assert "clock kept" in (read_clock_state(state) or {}).get("refused", "")
    cfg = from_dict({**SMALL, "storage": {"dir": str(tmp_path)}})
    assert check_time_sync(cfg).status == "WARN"
    # the next recording still carries the camera's own time, unsynced
    dock.dock_clock.fixed_us = None
    record(dev)
    dock_visit(dock, dev, creds, ClockPolicy(), state)
    manifests = [r for r in held_records(dock, dev) if r["type"] == "manifest"]
    assert manifests and all(m["wall_quality"] == "unsynced" for m in manifests)
    assert all(m["wall_start_us"] > Y2019 + 365 * DAY for m in manifests)
    assert all(m["clock_sync_seq"] is None for m in manifests)
    report = dock_report(dock, dev)
    assert report.ok, [f.detail for f in report.findings]
    assert [s["dock_signature"] for s in report.time_syncs] == ["valid", "valid"]


def test_a_small_correction_is_applied_and_recorded(dock, tmp_path):
    dev = camera(tmp_path)
    creds = enrol(dock, dev)
    record(dev)
    dock.dock_clock.fixed_us = dev.wall.wall_us(dev.now_us) + 2 * S  # the camera: 2 s slow
    [out] = dock_visit(dock, dev, creds, ClockPolicy(), tmp_path / CLOCK_STATE)
    assert out.applied and out.clock_step_seq is None
    assert out.offset_us == 2 * S
    assert dev.wall.quality == "synced" and dev.wall.last_sync_seq == out.time_sync_seq
    held = held_records(dock, dev)
    sync = next(r for r in held if r["type"] == "time_sync")
    assert sync["applied"] is True and sync["seq"] == out.time_sync_seq
    assert sync["offset_us"] == out.offset_us
    assert not [r for r in held if r["type"] == "clock_step"]
    # what the camera records after it says which sync its clock carries
    record(dev)
    dock.dock_clock.fixed_us = dev.wall.wall_us(dev.now_us) - S // 2  # now half a second fast
    [again] = dock_visit(dock, dev, creds, ClockPolicy(), tmp_path / CLOCK_STATE)
    assert again.applied and again.offset_us == -S // 2
    after = [
        r for r in held_records(dock, dev) if r["type"] == "manifest" and r["seq"] > sync["seq"]
    ]
    assert after and all(m["wall_quality"] == "synced" for m in after)
    assert all(m["clock_sync_seq"] == sync["seq"] for m in after)
    report = dock_report(dock, dev)
    assert report.ok, [f.detail for f in report.findings]
    bounded = [r for r in report.recordings if r.recorded_after_us is not None]
    assert len(bounded) == 1 and bounded[0].recorded_after_us == sync["dock_time_us"]
    assert json.dumps(report.to_json())  # the bounds go into the JSON report
    # the recording's exhibit carries the sync right before it: its lower bound too
    rec_id = after[0]["recording_id"]
    _, records = find_recording(dock.dock.store, rec_id)
    assert records[0].seq == sync["seq"]
    alone, _ = verify_recording(dock.dock.store, dev.keys.identity.device_id, records)
    assert alone.ok, [f.detail for f in alone.findings]
    [bounded_alone] = alone.recordings
    assert bounded_alone.recorded_after_us == sync["dock_time_us"]


def test_a_true_large_step_backed_by_the_pinned_tsa_is_applied_as_a_clock_step(dock, tmp_path):
    from tsa.client import TsaClient
    from tsa.testing import running_tsa

    dev = camera(tmp_path, wall_behind_us=30 * DAY)  # a month slow (no RTC, an old image)
    creds = enrol(dock, dev)
    with running_tsa(tmp_path) as (url, ca_pem), running_tsa(tmp_path, "other") as (_, other):
        dock.dock.tsa = TsaClient(url)
        # pinned to another TSA's CA: the token does not verify, the clock stays
        [refused] = dock_visit(dock, dev, creds, ClockPolicy(tsa_ca_pem=other), tmp_path / "s")
        assert not refused.applied and "does not verify" in (refused.refused or "")
        # pinned to this TSA's CA: applied, and recorded as a clock_step
        before = dev.wall.wall_us(dev.now_us)
        [out] = dock_visit(dock, dev, creds, ClockPolicy(tsa_ca_pem=ca_pem), tmp_path / "s")
    assert out.applied and out.clock_step_seq == out.time_sync_seq + 1
    assert 29 * DAY < dev.wall.wall_us(dev.now_us) - before < 31 * DAY
    assert dev.wall.quality == "synced"
    held = {r["seq"]: r for r in held_records(dock, dev)}
    sync, step = held[out.time_sync_seq], held[out.clock_step_seq]
    assert sync["type"] == "time_sync" and sync["applied"] and sync["tsa_token"]
    assert step["type"] == "clock_step" and step["time_sync_seq"] == sync["seq"]
    assert step["to_wall_us"] - step["from_wall_us"] == sync["offset_us"] == out.offset_us
    assert held[refused.time_sync_seq]["applied"] is False
    report = dock_report(dock, dev)
    assert report.ok, [f.detail for f in report.findings]


def test_a_token_for_another_time_than_the_docks_is_refused(dock, tmp_path):
    """A dock whose clock says 2019 with a real TSA: the token's time is the TSA's (now), not
    the dock's, so the step is refused."""
    from tsa.client import TsaClient
    from tsa.testing import running_tsa

    dev = camera(tmp_path)
    creds = enrol(dock, dev)
    dock.dock_clock.fixed_us = Y2019
    with running_tsa(tmp_path) as (url, ca_pem):
        dock.dock.tsa = TsaClient(url)
        [out] = dock_visit(dock, dev, creds, ClockPolicy(tsa_ca_pem=ca_pem), tmp_path / "s")
    assert not out.applied and "token's time" in (out.refused or "")
    assert dev.wall.quality == "unsynced"


def test_a_step_back_while_recording_leaves_the_open_segment_on_its_own_clock(dock, tmp_path):
    """A camera a month fast, docked while it records: the TSA-backed step back applies to
    the segments after it; the segment it cut through keeps the clock it started on (its
    wall end is not a month before its start), and nothing is time_inconsistent."""
    from tsa.client import TsaClient
    from tsa.testing import running_tsa

    dev = camera(tmp_path, wall_behind_us=-30 * DAY)  # a month fast
    creds = enrol(dock, dev)
    t = dev.now_us + 3 * S
    dev.run_until(t)
    dev.button(down=True)
    dev.run_until(t + S // 10)
    dev.button(down=False)
    dev.run_until(t + 3 * S)  # mid-segment (2 s segments)
    with running_tsa(tmp_path) as (url, ca_pem):
        dock.dock.tsa = TsaClient(url)
        [out] = dock_visit(dock, dev, creds, ClockPolicy(tsa_ca_pem=ca_pem), tmp_path / "s")
    assert out.applied and out.clock_step_seq is not None and out.offset_us < -29 * DAY
    dev.run_until(dev.now_us + 4 * S)
    dev.button(down=True)
    dev.run_until(dev.now_us + S)
    dev.button(down=False)
    dev.run_until(dev.now_us + S)
    dock.dock_clock.fixed_us = dev.wall.wall_us(dev.now_us)
    dock_visit(dock, dev, creds, ClockPolicy(), tmp_path / "s")
    manifests = [r for r in held_records(dock, dev) if r["type"] == "manifest"]
    assert all(m["wall_end_us"] >= m["wall_start_us"] for m in manifests)
    assert {m["clock_sync_seq"] for m in manifests} == {None, out.time_sync_seq}
    report = dock_report(dock, dev)
    assert report.ok, [f.detail for f in report.findings]
