"""The picamera2 camera backend over the fake picamera2: what the contract tests do not say."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from capture.camera import (
    CAPTURE_CLOCK_ID,
    FrameIndexer,
    KernelClock,
    Picamera2Camera,
    capture_clock,
    sensor_timestamp_us,
)
from capture.clock import OffsetWallClock
from capture.config import VideoConfig
from capture.overlay import Overlay
from capture.packets import Packet
from simulator.pattern import draw_background, draw_marks
from tests.fakes import install
from tests.fakes.picamera2 import FakePicamera2Env, make_fake_picamera2

VIDEO = VideoConfig(width=320, height=240, fps=30, bitrate=400_000, gop=30)
SENSOR_START_NS = 12_345_678_901_234


def make_camera(
    monkeypatch: pytest.MonkeyPatch, platform: str = "vc4", **kwargs
) -> tuple[Picamera2Camera, FakePicamera2Env, list[str]]:
    env = make_fake_picamera2(platform=platform, sensor_start_ns=SENSOR_START_NS)
    install(monkeypatch, env.modules)
    faults: list[str] = []
    cam = Picamera2Camera(
        VIDEO,
        Overlay("bwv-0042"),
        OffsetWallClock(1_767_225_600_000_000),
        KernelClock(origin_ns=SENSOR_START_NS - 2_000_000_000),
        on_fault=faults.append,
        **kwargs,
    )
    return cam, env, faults


def test_configures_the_camera_and_encoder_as_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    cam, env, _ = make_camera(monkeypatch)
    cam.start(lambda p: None)
    picam2 = env.camera
    config = picam2.camera_config
    assert config["main"]["format"] == "YUV420" and config["main"]["size"] == (320, 240)
    assert config["controls"]["FrameDurationLimits"] == (33333, 33333)
    assert config["lores"] is None
    (encoder,) = picam2.encoders
    assert (encoder.bitrate, encoder.iperiod, encoder.repeat, encoder.framerate) == (
        400_000,
        30,
        True,
        30,
    )
    assert picam2.pre_callback is not None and picam2.started
    cam.stop()
    assert picam2.closed and not picam2.started and not picam2.encoders
    cam.stop()  # idempotent


@pytest.mark.parametrize(("platform", "kind"), [("vc4", "v4l2"), ("pisp", "libx264")])
def test_detects_which_h264_encoder_runs(
    monkeypatch: pytest.MonkeyPatch, platform: str, kind: str
) -> None:
    cam, env, _ = make_camera(monkeypatch, platform)
    threads: set[int] = set()
    cam.start(lambda p: threads.add(threading.get_ident()))
    (encoder,) = env.camera.encoders
    env.camera.run(5)
    cam.stop()
    assert cam.encoder_kind == kind
    # the V4L2 encoder hands frames over from its poll thread, libx264 from the camera's
    camera_thread = threading.get_ident()  # the fake plays the sensor in the caller's thread
    if kind == "libx264":
        assert threads == {camera_thread}
    else:
        assert threads == encoder.poll_thread_ids and camera_thread not in threads


def test_capture_time_is_sensor_time_minus_the_clock_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cam, env, _ = make_camera(monkeypatch, "pisp")
    packets: list[Packet] = []
    cam.start(packets.append)
    env.camera.run(12)
    cam.stop()
    origin_us = cam.clock.origin_ns // 1000
    for p in packets:
        sensor_us = sensor_timestamp_us(env.camera.sensor_timestamp_ns(p.frame_index))
        assert p.pts_us == sensor_us - origin_us
    assert 1_999_000 <= packets[0].pts_us <= 2_001_000


def test_overlay_is_burned_into_the_bottom_right_of_the_picture_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cam, env, _ = make_camera(monkeypatch)
    cam.start(lambda p: None)
    env.camera.run(3)
    cam.stop()
    w, h = VIDEO.width, VIDEO.height
    for req in env.camera.requests:
        buf = req.buffers["main"]
        clean = np.empty((h, w), np.uint8)
        draw_background(clean, req.request.sequence)
        draw_marks(clean, req.request.sequence, False)
        changed = buf[:h, :w] != clean
        assert changed[h // 2 :, w // 2 :].sum() > 200  # the stamp is there
        changed[h // 2 :, w // 2 :] = False
        assert not changed.any()  # and nowhere else: strip and sync quarter untouched
        assert not buf[:h, w:].any()  # nor in the row padding
        assert (buf[h:] == 128).all()  # chroma untouched


def test_a_failing_consumer_is_a_fault_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    cam, env, faults = make_camera(monkeypatch, "pisp")
    seen: list[Packet] = []

    def on_packet(p: Packet) -> None:
        if p.frame_index == 3:
            raise OSError("disk on fire")
        seen.append(p)

    cam.start(on_packet)
    env.camera.run(8)
    cam.stop()
    assert len(faults) == 1 and "disk on fire" in faults[0] and cam.fault == faults[0]
    assert [p.frame_index for p in seen] == [0, 1, 2, 4, 5, 6, 7]
    assert cam.frames_delivered == 7 and cam.frames_captured == 8


def test_a_failing_overlay_is_a_fault_and_frames_keep_coming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cam, env, faults = make_camera(monkeypatch)

    class Broken(Overlay):
        def draw(self, image, wall_us):  # noqa: ANN001
            raise RuntimeError("font missing")

    cam.overlay = Broken("x")
    packets: list[Packet] = []
    cam.start(packets.append)
    env.camera.run(4)
    cam.stop()
    assert len(packets) == 4
    assert faults == ["overlay: RuntimeError: font missing"]


def test_a_failed_start_closes_the_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    cam, env, _ = make_camera(monkeypatch)

    def no_encoder(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("Failed to open /dev/video11")

    monkeypatch.setattr(env.modules["picamera2"].Picamera2, "start_encoder", no_encoder)
    with pytest.raises(RuntimeError, match="video11"):
        cam.start(lambda p: None)
    assert env.camera.closed
    cam.stop()  # nothing to stop


def test_frame_indexer_counts_frames_in_timestamp_gaps() -> None:
    ix = FrameIndexer(interval_us=33_333)
    times = [0, 33_300, 66_700, 116_000, 166_700, 300_000, 333_400]
    # 1.48 intervals is one frame late, not a drop; 2 intervals is one lost; 4 is three lost
    assert [ix.index_for(t) for t in times] == [0, 1, 2, 3, 5, 9, 10]
    assert ix.dropped == 4


def test_capture_clock_reads_the_kernel_clock_of_the_sensor_timestamps() -> None:
    assert CAPTURE_CLOCK_ID == time.CLOCK_MONOTONIC
    before = time.monotonic_ns()
    clock = capture_clock()
    assert before <= clock.origin_ns <= time.monotonic_ns()
    a = clock.now_us()
    time.sleep(0.002)
    b = clock.now_us()
    assert 0 <= a < b
    assert clock.from_kernel_ns(clock.origin_ns + 5_000_999) == 5_000
    assert clock.from_kernel_us(clock.origin_ns // 1000 + 7) == 7
    assert abs(clock.from_kernel_ns(time.monotonic_ns()) - clock.now_us()) < 5_000


def test_hardware_libraries_are_imported_lazily() -> None:
    code = (
        "import sys, capture.camera, capture.microphone, gpio.rpi\n"
        "bad = [m for m in ('picamera2', 'pyaudio', 'RPi', 'RPi.GPIO', 'libcamera')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent),
    )
