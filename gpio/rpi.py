"""Pins through RPi.GPIO: :class:`gpio.backend.PinBackend` on the device.

BCM numbering. Inputs are set up with the pull the device asks for and watched with
``GPIO.add_event_detect(pin, GPIO.BOTH, callback=...)`` without ``bouncetime``: debouncing
and glitch filtering are :class:`gpio.devices.Button`'s, on capture time. RPi.GPIO calls the
callback on its own thread with the channel number only, so the callback takes the time from
the injected clock first (as close to the edge as user space gets) and then reads the level;
the devices only enqueue what it passes on.

Two modules answer to ``import RPi.GPIO``:

- RPi.GPIO 0.7.x itself (Pi 0-4). Its edge detection goes through the sysfs GPIO interface,
  which fails on the Raspberry Pi kernels from 6.6 on ("RuntimeError: Failed to add edge
  detection", raspberrypi/linux issue 6037, gpiozero issue 1136), and it cannot drive a Pi 5
  at all. Reading and writing pins still work there.
- rpi-lgpio (``pip install rpi-lgpio``, or Debian's ``python3-rpi-lgpio``), a shim over
  lgpio and the gpiochip character device: use it on a Pi 5 and on any current kernel. The
  two cannot be installed side by side. Its differences that matter here (waveform80/rpi-lgpio,
  ``docs/differences.rst`` and ``RPi/GPIO/__init__.py``): lgpio delivers each edge with its
  level and a kernel timestamp but the shim passes the callback only the channel, as
  RPi.GPIO does, so the level is read back here as with RPi.GPIO; its ``bouncetime``
  waits for a stable level instead of suppressing repeats (not used here); a second
  ``add_event_detect`` on a pin appends the callback where RPi.GPIO raises "Conflicting edge
  detection" (this backend calls it once per pin); exceptions in callbacks are printed, not
  raised, by both; ``setup(pin, OUT)`` cancels edge detection on that pin; a pin another
  process holds fails with "GPIO not allocated" (RPi.GPIO would share it).

Both modules refuse to import off a Pi (RuntimeError), which is why the import is in the
constructor, never at module import.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from base.clock import Clock
from gpio.backend import EdgeCallback

log = logging.getLogger("bwv.gpio")


class RpiGpioBackend:
    """:class:`gpio.backend.PinBackend` over RPi.GPIO (or rpi-lgpio), BCM numbering.

    Edge times come from ``clock`` (the capture clock, :func:`capture.camera.capture_clock`
    on the device) read in RPi.GPIO's callback thread. Two callbacks that read the same level
    mean the pin bounced and came back between them: that glitch is dropped and counted in
    :attr:`glitches` (a :class:`gpio.devices.Button` would have filtered it anyway).
    """

    def __init__(self, clock: Clock, *, warnings: bool = False) -> None:
        import RPi.GPIO as GPIO  # noqa: N814 - the module's own name

        self._gpio: Any = GPIO
        self._clock = clock
        # Off by default: after a crash systemd restarts us on pins RPi.GPIO still thinks are
        # in use, and it would warn about each of them on every start.
        GPIO.setwarnings(warnings)
        GPIO.setmode(GPIO.BCM)
        self._modes: dict[int, str] = {}
        self._callbacks: dict[int, list[EdgeCallback]] = {}
        self._levels: dict[int, bool] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.glitches = 0
        self.callback_errors = 0

    # -- PinBackend ---------------------------------------------------------------------------

    def setup_input(self, pin: int, pull_up: bool) -> None:
        g = self._gpio
        self._claim(pin, "input")
        g.setup(pin, g.IN, pull_up_down=g.PUD_UP if pull_up else g.PUD_DOWN)
        self._levels[pin] = bool(g.input(pin))

    def setup_output(self, pin: int, initial: bool) -> None:
        g = self._gpio
        self._claim(pin, "output")
        g.setup(pin, g.OUT, initial=g.HIGH if initial else g.LOW)

    def read(self, pin: int) -> bool:
        self._check(pin)
        return bool(self._gpio.input(pin))

    def write(self, pin: int, level: bool) -> None:
        self._check(pin, "output")
        g = self._gpio
        g.output(pin, g.HIGH if level else g.LOW)

    def add_edge_callback(self, pin: int, fn: EdgeCallback) -> None:
        self._check(pin, "input")
        with self._lock:
            first = pin not in self._callbacks
            self._callbacks.setdefault(pin, []).append(fn)
        if first:
            g = self._gpio
            g.add_event_detect(pin, g.BOTH, callback=self._on_edge)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watched = list(self._callbacks)
            self._callbacks.clear()
        g = self._gpio
        for pin in watched:
            try:
                g.remove_event_detect(pin)
            except Exception:  # noqa: BLE001 - closing: release the rest anyway
                log.exception("remove_event_detect(%d)", pin)
        if self._modes:
            g.cleanup(sorted(self._modes))

    # -- RPi.GPIO's thread --------------------------------------------------------------------

    def _on_edge(self, channel: int) -> None:
        at_us = self._clock.now_us()
        if self._closed:  # an edge already queued when we closed: the pin is released
            return
        try:
            level = bool(self._gpio.input(channel))
            with self._lock:
                if self._closed:
                    return
                if self._levels.get(channel) == level:
                    self.glitches += 1
                    return
                self._levels[channel] = level
                fns = list(self._callbacks.get(channel, ()))
            for fn in fns:
                fn(channel, level, at_us)
        except Exception:  # noqa: BLE001 - RPi.GPIO would only print it
            self.callback_errors += 1
            log.exception("edge callback for pin %d", channel)

    # -- internals -----------------------------------------------------------------------------

    def _claim(self, pin: int, mode: str) -> None:
        if self._closed:
            raise RuntimeError("pin backend is closed")
        if pin in self._modes:
            raise ValueError(f"pin {pin} is already set up as an {self._modes[pin]}")
        self._modes[pin] = mode

    def _check(self, pin: int, mode: str | None = None) -> None:
        if self._closed:
            raise RuntimeError("pin backend is closed")
        have = self._modes.get(pin)
        if have is None:
            raise ValueError(f"pin {pin} is not set up")
        if mode is not None and have != mode:
            raise ValueError(f"pin {pin} is an {have}, not an {mode}")
