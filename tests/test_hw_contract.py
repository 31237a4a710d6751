"""One contract, two implementations: the same tests run against the simulator's twins and
against the hardware adapters over fakes of their libraries (tests/fakes/).

The simulator's camera and microphone are poll-driven (the simulator advances a virtual
clock) and the hardware ones push from their libraries' threads, so each gets a thin rig
here that starts it, lets the "sensor" produce frames or samples and stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np
import pytest

from base.formats import AudioFormat, VideoFormat
from capture.audio_encoder import AacEncoder
from capture.camera import KernelClock, Picamera2Camera
from capture.clock import OffsetWallClock, VirtualClock
from capture.config import VideoConfig
from capture.h264 import parameter_sets
from capture.microphone import PyAudioMicrophone
from capture.overlay import Overlay
from capture.packets import Packet, Stream
from gpio.backend import PinBackend
from gpio.devices import Button, ButtonEvent, Haptic, Led
from gpio.patterns import BUZZ_STOP
from gpio.rpi import RpiGpioBackend
from gpio.sim import SimPinBackend
from simulator.camera import SimCamera
from simulator.microphone import SimMicrophone
from simulator.pattern import audio_chunk, find_bursts, read_frame_index
from tests.fakes import install
from tests.fakes.picamera2 import make_fake_picamera2
from tests.fakes.pyaudio import make_fake_pyaudio
from tests.fakes.rpi_gpio import make_fake_rpi_gpio

START_US = 1_000_000  # capture time of the sensor's first frame / the microphone's sample 0
VIDEO = VideoConfig(width=320, height=240, fps=30, bitrate=400_000, gop=30)
INTERVAL_US = 1_000_000 // VIDEO.fps
EPOCH_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


# -- camera -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingOverlay(Overlay):
    """The real overlay, remembering each call: (wall time, image shape)."""

    calls: list[tuple[int, tuple[int, ...]]] = field(default_factory=list, compare=False)

    def draw(self, image: np.ndarray, wall_us: int) -> None:
        self.calls.append((wall_us, image.shape))
        super().draw(image, wall_us)


class CameraRig(Protocol):
    overlay: RecordingOverlay
    wall: OffsetWallClock

    def start(self, on_packet: Callable[[Packet], None]) -> None: ...

    def capture(self, frames: int, drop: range = range(0)) -> None:
        """The sensor runs ``frames`` more frame slots; the slots in ``drop`` (a run in the
        middle, counted from the first slot after start) are lost."""
        ...

    def stop(self) -> None: ...

    def dropped(self) -> int: ...


class SimCameraRig:
    def __init__(self) -> None:
        self.overlay = RecordingOverlay("bwv-test-7")
        self.wall = OffsetWallClock(EPOCH_US)
        self.slot = 0
        self.cam: SimCamera | None = None

    def start(self, on_packet: Callable[[Packet], None]) -> None:
        self.on_packet = on_packet
        self.cam = SimCamera(
            VideoFormat(VIDEO.width, VIDEO.height, VIDEO.fps),
            VIDEO.bitrate,
            VIDEO.gop,
            self.overlay,
            self.wall,
            on_packet,
            start_us=START_US,
            drop_late=True,
        )

    def capture(self, frames: int, drop: range = range(0)) -> None:
        assert self.cam is not None
        end, i = self.slot + frames, self.slot
        while i < end:
            if i in drop:
                # one late poll: every slot of the run is over two intervals old, so the
                # camera drops it, and the two slots after it are captured
                assert drop.stop + 1 < end
                self.cam.poll(self.cam.frame_time(drop.stop + 1) + 1)
                i = drop.stop + 2
            else:
                self.cam.poll(self.cam.frame_time(i))
                i += 1
        self.slot = end

    def stop(self) -> None:
        assert self.cam is not None
        for p in self.cam.encoder.flush():
            self.on_packet(p)

    def dropped(self) -> int:
        assert self.cam is not None
        return self.cam.dropped


class Picamera2Rig:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, platform: str) -> None:
        self.overlay = RecordingOverlay("bwv-test-7")
        self.wall = OffsetWallClock(EPOCH_US)
        sensor_start_ns = 7_000_000_000
        self.env = make_fake_picamera2(platform=platform, sensor_start_ns=sensor_start_ns)
        install(monkeypatch, self.env.modules)
        self.faults: list[str] = []
        clock = KernelClock(origin_ns=sensor_start_ns - START_US * 1000)
        self.cam = Picamera2Camera(
            VIDEO, self.overlay, self.wall, clock, on_fault=self.faults.append
        )

    def start(self, on_packet: Callable[[Packet], None]) -> None:
        self.cam.start(on_packet)

    def capture(self, frames: int, drop: range = range(0)) -> None:
        self.env.camera.run(frames, drop=set(drop))

    def stop(self) -> None:
        self.cam.stop()
        assert self.faults == [] and self.cam.fault is None

    def dropped(self) -> int:
        return self.cam.dropped_frames


@pytest.fixture(params=["sim", "picamera2-vc4", "picamera2-pisp"])
def camera_rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> CameraRig:
    if request.param == "sim":
        return SimCameraRig()
    return Picamera2Rig(monkeypatch, request.param.split("-")[1])


def record(rig: CameraRig, frames: int, drop: range = range(0)) -> list[Packet]:
    packets: list[Packet] = []
    rig.start(packets.append)
    rig.capture(frames, drop)
    rig.stop()
    return packets


def decode_h264(packets: list[Packet]) -> list[np.ndarray]:
    """Luma planes of the decoded frames, in order."""
    ctx = av.CodecContext.create("h264", "r")
    out = []
    for p in packets:
        for f in ctx.decode(av.Packet(p.data)):
            out.append(f.to_ndarray(format="gray"))
    for f in ctx.decode(None):
        out.append(f.to_ndarray(format="gray"))
    return out


def test_camera_delivers_packets_in_order_with_capture_times(camera_rig: CameraRig) -> None:
    packets = record(camera_rig, 70)
    assert len(packets) == 70
    assert all(p.stream is Stream.VIDEO and p.duration_us == INTERVAL_US for p in packets)
    assert [p.frame_index for p in packets] == list(range(70))
    pts = [p.pts_us for p in packets]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))
    for p in packets:  # the sensor's times, not the time of delivery (within its jitter)
        assert abs(p.pts_us - (START_US + p.frame_index * 1_000_000 // VIDEO.fps)) <= 1000
    assert camera_rig.dropped() == 0


def test_camera_keyframe_every_gop_carries_sps_pps(camera_rig: CameraRig) -> None:
    packets = record(camera_rig, 70)
    assert [i for i, p in enumerate(packets) if p.keyframe] == [0, 30, 60]
    for p in packets:
        if p.keyframe:
            assert parameter_sets(p.data).startswith(b"\x00\x00\x00\x01\x67")
        else:
            with pytest.raises(ValueError):
                parameter_sets(p.data)


def test_camera_frame_index_skips_dropped_frames_like_a_sensor_sequence(
    camera_rig: CameraRig,
) -> None:
    packets = record(camera_rig, 70, drop=range(40, 43))
    indices = [p.frame_index for p in packets]
    assert indices == [*range(40), *range(43, 70)]
    assert camera_rig.dropped() == 3
    after = packets[40]
    assert abs(after.pts_us - (START_US + 43 * INTERVAL_US)) <= 1000
    # the keyframe cadence counts encoded frames, not sensor slots
    assert [i for i, p in enumerate(packets) if p.keyframe] == [0, 30, 60]
    # what was encoded is what the index says: the pattern's strip is the sensor's count
    frames = decode_h264(packets)
    assert [read_frame_index(f) for f in frames] == indices


def test_camera_overlay_drawn_on_every_frame_with_its_wall_time(camera_rig: CameraRig) -> None:
    packets = record(camera_rig, 35, drop=range(10, 12))
    walls = [w for w, _ in camera_rig.overlay.calls]
    assert walls == [camera_rig.wall.wall_us(p.pts_us) for p in packets]
    # drawn on the picture only (luma, no row padding)
    assert {shape for _, shape in camera_rig.overlay.calls} == {(VIDEO.height, VIDEO.width)}


# -- microphone ---------------------------------------------------------------------------------

AUDIO = AudioFormat(sample_rate=48_000, channels=1, bitrate=64_000)
MIC_START_US = 1_250_000  # sample 0; the bursts are at whole seconds of capture time


class MicRig(Protocol):
    def start(self, on_packet: Callable[[Packet], None]) -> None: ...

    def capture(self, seconds: float) -> None: ...

    def stop(self) -> None: ...


class SimMicRig:
    def start(self, on_packet: Callable[[Packet], None]) -> None:
        self.on_packet = on_packet
        self.mic = SimMicrophone(AUDIO, on_packet, start_us=MIC_START_US, chunk_samples=1024)

    def capture(self, seconds: float) -> None:
        self.mic.poll(MIC_START_US + round(seconds * 1_000_000))

    def stop(self) -> None:
        for p in self.mic.encoder.flush():
            self.on_packet(p)


class PyAudioMicRig:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clock = VirtualClock()
        rng = np.random.default_rng(3)
        self.env = make_fake_pyaudio(
            clock=self.clock,
            source=lambda first, n, rate: audio_chunk(first, n, rate, MIC_START_US, rng),
        )
        install(monkeypatch, self.env.modules)
        self.mic = PyAudioMicrophone(
            AUDIO,
            self.clock,
            chunk=1024,
            device_name="USB",
            time_sources={"monotonic": lambda: self.env.time_info_now(self.clock.now_us())},
        )

    def start(self, on_packet: Callable[[Packet], None]) -> None:
        self.mic.start(on_packet)

    def capture(self, seconds: float) -> None:
        self.env.stream.deliver(int(seconds * AUDIO.sample_rate) // 1024, start_us=MIC_START_US)

    def stop(self) -> None:
        self.mic.stop()
        assert self.mic.fault is None


@pytest.fixture(params=["sim", "pyaudio"])
def mic_rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> MicRig:
    return SimMicRig() if request.param == "sim" else PyAudioMicRig(monkeypatch)


def decode_aac(packets: list[Packet], fmt: AudioFormat = AUDIO) -> np.ndarray:
    """int16 samples of the packets, decoded in order (the first is at packets[0].pts_us)."""
    ctx = av.CodecContext.create("aac", "r")
    ctx.extradata = AacEncoder(fmt).extradata
    ctx.sample_rate, ctx.layout = fmt.sample_rate, "mono" if fmt.channels == 1 else "stereo"
    chunks = []
    for p in packets:
        pkt = av.Packet(p.data)
        pkt.pts, pkt.time_base = p.pts_us, Fraction(1, 1_000_000)
        for f in ctx.decode(pkt):
            chunks.append(f.to_ndarray()[0])
    return (np.concatenate(chunks) * 32767).astype(np.int16)


def burst_times_us(packets: list[Packet], fmt: AudioFormat = AUDIO) -> list[int]:
    samples = decode_aac(packets, fmt)
    return [
        packets[0].pts_us + i * 1_000_000 // fmt.sample_rate
        for i in find_bursts(samples, fmt.sample_rate)
    ]


def test_microphone_packets_are_contiguous_aac_in_capture_time(mic_rig: MicRig) -> None:
    packets: list[Packet] = []
    mic_rig.start(packets.append)
    mic_rig.capture(4.0)
    mic_rig.stop()
    assert all(p.stream is Stream.AUDIO and p.keyframe for p in packets)
    assert packets[0].pts_us == MIC_START_US
    for a, b in zip(packets, packets[1:], strict=False):
        assert abs(b.pts_us - a.end_us) <= 1  # rounding of sample times to µs
    covered = packets[-1].end_us - packets[0].pts_us
    assert abs(covered - 4_000_000) <= 2 * 1024 * 1_000_000 // AUDIO.sample_rate


def test_microphone_bursts_decode_at_whole_seconds_of_capture_time(mic_rig: MicRig) -> None:
    packets: list[Packet] = []
    mic_rig.start(packets.append)
    mic_rig.capture(4.0)
    mic_rig.stop()
    bursts = burst_times_us(packets)
    assert len(bursts) == 4
    for k, t in enumerate(bursts):
        assert abs(t - (k + 2) * 1_000_000) <= 1_000, bursts


# -- pins ---------------------------------------------------------------------------------------


class PinRig(Protocol):
    backend: PinBackend

    def drive(self, pin: int, level: bool, at_us: int) -> None: ...

    def level(self, pin: int) -> bool: ...

    def close(self) -> None: ...


class SimPinRig:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.backend: SimPinBackend = SimPinBackend(self.clock)

    def drive(self, pin: int, level: bool, at_us: int) -> None:
        self.clock.set(max(self.clock.now_us(), at_us))
        self.backend.drive(pin, level, at_us)

    def level(self, pin: int) -> bool:
        return self.backend.level(pin)

    def close(self) -> None:
        self.backend.close()


class RpiPinRig:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, flavour: str) -> None:
        self.clock = VirtualClock()
        self.env = make_fake_rpi_gpio(flavour)
        install(monkeypatch, self.env.modules)
        self.backend: RpiGpioBackend = RpiGpioBackend(self.clock)

    def drive(self, pin: int, level: bool, at_us: int) -> None:
        self.clock.set(at_us)  # the edge happens now; the backend reads the clock
        self.env.board.drive(pin, int(level))

    def level(self, pin: int) -> bool:
        return bool(self.env.board.level(pin))

    def close(self) -> None:
        self.backend.close()
        self.env.board.stop()


@pytest.fixture(params=["sim", "RPi.GPIO", "rpi-lgpio"])
def pins(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[PinRig]:
    rig: Any = SimPinRig() if request.param == "sim" else RpiPinRig(monkeypatch, request.param)
    yield rig
    rig.close()


def test_button_press_and_release_reach_the_button_with_their_times(pins: PinRig) -> None:
    button = Button(pins.backend, 17, debounce_s=0.030, hold_s=3.0)
    assert pins.level(17) is True  # pulled up: not pressed
    pins.drive(17, False, 1_000_000)
    pins.drive(17, True, 1_500_000)
    assert button.tick(2_000_000) == [
        ButtonEvent("press", 1_000_000),
        ButtonEvent("release", 1_500_000),
    ]


def test_button_glitch_is_filtered_and_hold_is_reported(pins: PinRig) -> None:
    button = Button(pins.backend, 17, debounce_s=0.030, hold_s=3.0)
    pins.drive(17, False, 1_000_000)
    pins.drive(17, True, 1_010_000)  # 10 ms: a knock, not a press
    pins.drive(17, False, 2_000_000)
    assert button.tick(5_500_000) == [
        ButtonEvent("press", 2_000_000),
        ButtonEvent("hold", 5_000_000),
    ]


def test_led_and_haptic_writes_reach_the_pins(pins: PinRig) -> None:
    red, haptic = Led(pins.backend, 27), Haptic(pins.backend, 23)
    assert pins.level(27) is False and pins.level(23) is False
    red.on()
    red.tick(0)
    assert pins.level(27) is True
    red.off()
    red.tick(10_000)
    assert pins.level(27) is False
    haptic.buzz(BUZZ_STOP)
    seen = []
    for t in range(0, 1_000_000, 10_000):
        haptic.tick(t)
        seen.append(pins.level(23))
    # two short buzzes: off -> on -> off -> on -> off
    changes = [b for a, b in zip([False, *seen], seen, strict=False) if a != b]
    assert changes == [True, False, True, False]


def test_closed_backend_refuses_and_delivers_nothing(pins: PinRig) -> None:
    button = Button(pins.backend, 17, debounce_s=0.030, hold_s=3.0)
    pins.backend.close()
    with pytest.raises(RuntimeError):
        pins.backend.setup_output(5, False)
    assert button.tick(1_000_000) == []
