"""The device's hardware, built from the configuration: picamera2, pyaudio and RPi.GPIO
behind the interfaces the core uses. Every hardware library is imported here lazily (in
the backends' ``start``/constructors), so importing bwv never needs them."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from base.clock import WallClock
from base.formats import AudioFormat
from capture.camera import CameraBackend, KernelClock, Picamera2Camera, capture_clock
from capture.config import Config
from capture.microphone import MicrophoneBackend, PyAudioMicrophone
from capture.overlay import Overlay
from gpio.backend import PinBackend


@dataclass(frozen=True)
class DeviceLibrary:
    module: str  # what the code imports
    package: str  # the Debian / Raspberry Pi OS package that provides it
    used_for: str


DEVICE_LIBRARIES = (
    DeviceLibrary("picamera2", "python3-picamera2", "the camera"),
    DeviceLibrary("pyaudio", "python3-pyaudio", "the microphone"),
    DeviceLibrary("RPi.GPIO", "python3-rpi-lgpio", "the button, LEDs and motor"),
)


def missing_libraries(cfg: Config) -> list[DeviceLibrary]:
    """The device's hardware libraries this Python cannot import (without importing them:
    RPi.GPIO refuses to import off a Pi)."""
    out = []
    for lib in DEVICE_LIBRARIES:
        if lib.module == "pyaudio" and not cfg.audio.enabled:
            continue
        try:
            found = importlib.util.find_spec(lib.module.split(".")[0]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(lib)
    return out


def describe_missing(missing: list[DeviceLibrary]) -> str:
    """One line: what is missing, which packages provide it, and how the device gets them."""
    names = ", ".join(f"{m.module} for {m.used_for} (apt package {m.package})" for m in missing)
    return (
        f"the camera's hardware libraries are not installed: {names}. `bwv run` runs on the "
        "camera (a Raspberry Pi), where `sudo ./install.sh` installs them; on a desktop, "
        "`bwv sim` runs the device on simulated hardware"
    )


@dataclass
class Hardware:
    clock: KernelClock
    camera: CameraBackend
    microphone: MicrophoneBackend | None
    pins: PinBackend


def build_hardware(
    cfg: Config,
    wall: WallClock,
    on_fault: Callable[[str], None],
    on_warning: Callable[[str], None] | None = None,
    clock: KernelClock | None = None,
    pins: PinBackend | None = None,
) -> Hardware:
    """``clock``: the daemon's one capture clock (the wall clock is anchored to it);
    ``pins``: used instead of RPi.GPIO's (``bwv selftest`` without that library)."""
    from gpio.rpi import RpiGpioBackend

    clock = clock or capture_clock()
    camera = Picamera2Camera(cfg.video, Overlay(cfg.device_id), wall, clock, on_fault=on_fault)
    microphone = None
    if cfg.audio.enabled:
        a = cfg.audio
        microphone = PyAudioMicrophone(
            AudioFormat(a.sample_rate, a.channels, a.bitrate),
            clock,
            device_name=a.device or None,
            on_fault=on_fault,
            on_warning=on_warning,
        )
    return Hardware(clock, camera, microphone, pins if pins is not None else RpiGpioBackend(clock))
