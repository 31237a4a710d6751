"""The device's hardware, built from the configuration: picamera2, pyaudio and RPi.GPIO
behind the interfaces the core uses. Every hardware library is imported here lazily (in
the backends' ``start``/constructors), so importing bwv never needs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from capture.audio_encoder import AudioFormat
from capture.camera import CameraBackend, KernelClock, Picamera2Camera, capture_clock
from capture.clock import WallClock
from capture.config import Config
from capture.microphone import MicrophoneBackend, PyAudioMicrophone
from capture.overlay import Overlay
from gpio.backend import PinBackend


@dataclass
class Hardware:
    clock: KernelClock
    camera: CameraBackend
    microphone: MicrophoneBackend | None
    pins: PinBackend


def build_hardware(cfg: Config, wall: WallClock, on_fault: Callable[[str], None],
                   on_warning: Callable[[str], None] | None = None,
                   clock: KernelClock | None = None, pins: PinBackend | None = None) -> Hardware:
    """``clock``: the daemon's one capture clock (the wall clock is anchored to it);
    ``pins``: used instead of RPi.GPIO's (``bwv selftest`` without that library)."""
    from gpio.rpi import RpiGpioBackend

    clock = clock or capture_clock()
    camera = Picamera2Camera(cfg.video, Overlay(cfg.device_id), wall, clock,
                             on_fault=on_fault)
    microphone = None
    if cfg.audio.enabled:
        a = cfg.audio
        microphone = PyAudioMicrophone(
            AudioFormat(a.sample_rate, a.channels, a.bitrate), clock,
            device_name=a.device or None,
            on_fault=on_fault,
            on_warning=on_warning,
        )
    return Hardware(clock, camera, microphone, pins if pins is not None else RpiGpioBackend(clock))
