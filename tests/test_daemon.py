"""The device daemon as systemd and a technician see it: READY once frames flow, a watchdog
fed only while they keep flowing, status written for `bwv status`, the button recording
through it, faults shown; driven tick by tick with a virtual clock."""

from __future__ import annotations

import json
import socket

import numpy as np
from nacl.public import PrivateKey

from base.formats import VideoFormat
from capture.clock import OffsetWallClock, VirtualClock
from capture.config import from_dict
from capture.hardware import Hardware
from crypto.identity import DeviceIdentity
from crypto.verify import verify_outbox
from device_app.daemon import STALL_US, Daemon, status_path
from gpio.sim import SimPinBackend
from simulator.encoder import H264Encoder
from tests.conftest import SMALL

S = 1_000_000


class StepCamera:
    """A camera backend the test steps: each ``emit`` captures one frame at the clock's
    time (real H.264 from the simulator's encoder)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.frames_delivered = 0
        self.fault: str | None = None
        self.enc = H264Encoder(VideoFormat(320, 240, 30), 300_000, 30)
        self.on_packet = None
        self.index = 0

    def start(self, on_packet) -> None:
        self.on_packet = on_packet

    def stop(self) -> None:
        self.on_packet = None

    def emit(self) -> None:
        yuv = np.full((360, 320), 16 + self.index % 200, np.uint8)
        for p in self.enc.encode(yuv, self.clock.now_us(), self.index):
            self.frames_delivered += 1
            self.on_packet(p)
        self.index += 1


def _notify_socket(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify"))
    s.setblocking(False)
    return s


def _messages(s) -> list[str]:
    out = []
    while True:
        try:
            out.append(s.recv(4096).decode())
        except BlockingIOError:
            return out


def _daemon(tmp_path, provisioned=True):
    from capture.notify import Notifier

    keys = tmp_path / "keys"
    cfg = from_dict(
        {
            **SMALL,
            "audio": {"enabled": False},
            "storage": {"dir": str(tmp_path / "state"), "low_space_minutes": 0},
            "keys": {
                "device_key": str(keys / "device.key"),
                "agency_public_key": str(keys / "agency.pub"),
                "dock_public_key": str(keys / "dock.pub"),
            },
        }
    )
    agency = PrivateKey.generate()
    if provisioned:
        DeviceIdentity.generate(keys / "device.key", cfg.device_id)
        (keys / "agency.pub").write_text(bytes(agency.public_key).hex())
    clock = VirtualClock()
    pins = SimPinBackend(clock)
    cam = StepCamera(clock)
    sock = _notify_socket(tmp_path)
    d = Daemon(
        cfg,
        Hardware(clock, cam, None, pins),
        OffsetWallClock(1_790_000_000 * S),
        "test",
        Notifier(str(tmp_path / "notify")),
    )
    d.start()
    return d, cfg, clock, cam, pins, sock, agency


def _run(d, clock, cam, seconds, frames=True):
    for _ in range(int(seconds * 30)):
        clock.advance(S // 30)
        if frames:
            cam.emit()
        d.tick(clock.now_us())


def test_ready_only_once_frames_flow_and_watchdog_only_while_they_do(tmp_path):
    d, cfg, clock, cam, pins, sock, _ = _daemon(tmp_path)
    d.tick(clock.now_us())
    assert not any("READY=1" in m for m in _messages(sock))  # no frames yet: not ready
    _run(d, clock, cam, 3)
    msgs = _messages(sock)
    assert any(m.startswith("READY=1") for m in msgs)
    assert sum(m == "WATCHDOG=1" for m in msgs) >= 1
    _run(d, clock, cam, (STALL_US + S) / S, frames=False)  # the camera stalls...
    _messages(sock)
    _run(d, clock, cam, 5, frames=False)
    late = _messages(sock)
    assert late and "WATCHDOG=1" not in late  # ...so systemd will restart the service
    d.stop()


def test_status_file_and_a_recording_through_the_button(tmp_path):
    d, cfg, clock, cam, pins, sock, agency = _daemon(tmp_path)
    _run(d, clock, cam, 3)
    status = json.loads(status_path(cfg).read_text())
    assert status["state"] == "buffering" and status["faults"] == []
    assert status["frames_delivered"] >= 60  # written once a second
    pins.drive(cfg.pins.button, False, clock.now_us())  # press
    _run(d, clock, cam, 0.2)
    pins.drive(cfg.pins.button, True, clock.now_us())
    _run(d, clock, cam, 3)
    assert json.loads(status_path(cfg).read_text())["state"] == "recording"
    pins.drive(cfg.pins.button, False, clock.now_us())  # hold 3 s to stop
    _run(d, clock, cam, 3.3)
    pins.drive(cfg.pins.button, True, clock.now_us())
    _run(d, clock, cam, 1)
    assert json.loads(status_path(cfg).read_text())["state"] == "buffering"
    d.stop()
    report = verify_outbox(
        tmp_path / "state" / "outbox",
        DeviceIdentity.load(tmp_path / "keys" / "device.key", cfg.device_id).public_key,
        agency,
    )
    assert report.ok, report.findings
    assert [r.status for r in report.recordings] == ["complete"]


def test_unprovisioned_daemon_runs_but_refuses_to_record_and_says_why(tmp_path):
    d, cfg, clock, cam, pins, sock, _ = _daemon(tmp_path, provisioned=False)
    _run(d, clock, cam, 2)
    status = json.loads(status_path(cfg).read_text())
    assert status["state"] == "refusing"
    assert any("bwv provision" in f for f in status["faults"])
    pins.drive(cfg.pins.button, False, clock.now_us())
    _run(d, clock, cam, 1)
    assert not (tmp_path / "state" / "outbox").exists()
    d.stop()


def test_camera_fault_is_shown_to_the_officer(tmp_path):
    d, cfg, clock, cam, pins, sock, _ = _daemon(tmp_path)
    _run(d, clock, cam, 1)
    cam.fault = "sensor timeout"
    _run(d, clock, cam, 1.1, frames=False)
    status = json.loads(status_path(cfg).read_text())
    assert any("sensor timeout" in f for f in status["faults"])
    assert "fault" in status["indicator"]
    d.stop()
