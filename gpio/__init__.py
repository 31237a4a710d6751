"""Officer's controls: debounced button, LEDs and haptic over a swappable pin backend.

Pure Python; hardware backends (RPi.GPIO) plug in behind :class:`PinBackend`.
"""

from gpio.backend import EdgeCallback, PinBackend
from gpio.controls import ControlsConfig, ControlsStatus, Indicator, Intent, OfficerControls
from gpio.devices import Button, ButtonEvent, Haptic, Led
from gpio.patterns import Pattern
from gpio.sim import PinWrite, SimPinBackend

__all__ = [
    "Button",
    "ButtonEvent",
    "ControlsConfig",
    "ControlsStatus",
    "EdgeCallback",
    "Haptic",
    "Indicator",
    "Intent",
    "Led",
    "OfficerControls",
    "Pattern",
    "PinBackend",
    "PinWrite",
    "SimPinBackend",
]
