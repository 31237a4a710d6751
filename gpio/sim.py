"""Simulated pins for the desktop simulator and the tests (like gpiozero's ``MockFactory``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from base.clock import Clock
from gpio.backend import EdgeCallback


@dataclass(frozen=True, slots=True)
class PinWrite:
    """One output write: ``pin`` driven to ``level`` at capture time ``at_us``."""

    pin: int
    level: bool
    at_us: int


@dataclass
class _Pin:
    mode: str  # "input" | "output"
    level: bool
    callbacks: list[EdgeCallback] = field(default_factory=list)
    last_drive_us: int | None = None


class SimPinBackend:
    """In-memory pins implementing :class:`gpio.backend.PinBackend`.

    Inputs are driven from outside with :meth:`drive`, which delivers an edge (with its
    time) to the callbacks when the level changes. Every output write is recorded in
    :attr:`history` with the time of the injected ``clock`` at the moment of the write.
    Setting a pin up twice is an error, so two devices configured on one pin fail loudly.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._pins: dict[int, _Pin] = {}
        self.history: list[PinWrite] = []
        self.closed = False

    # -- PinBackend -------------------------------------------------------------------------

    def setup_input(self, pin: int, pull_up: bool) -> None:
        self._new_pin(pin, "input", pull_up)

    def setup_output(self, pin: int, initial: bool) -> None:
        self._new_pin(pin, "output", initial)

    def read(self, pin: int) -> bool:
        return self._pin(pin).level

    def write(self, pin: int, level: bool) -> None:
        p = self._pin(pin, "output")
        p.level = bool(level)
        self.history.append(PinWrite(pin, bool(level), self._clock.now_us()))

    def add_edge_callback(self, pin: int, fn: EdgeCallback) -> None:
        self._pin(pin, "input").callbacks.append(fn)

    def close(self) -> None:
        self.closed = True
        for p in self._pins.values():
            p.callbacks.clear()

    # -- the simulator's side ---------------------------------------------------------------

    def drive(self, pin: int, level: bool, at_us: int) -> None:
        """Set input ``pin`` to ``level`` at ``at_us``; an actual change is delivered as an edge.

        Times must not go backwards on a pin.
        """
        p = self._pin(pin, "input")
        if p.last_drive_us is not None and at_us < p.last_drive_us:
            raise ValueError(f"pin {pin}: drive at {at_us} µs is before {p.last_drive_us} µs")
        p.last_drive_us = at_us
        level = bool(level)
        if level == p.level:
            return
        p.level = level
        for fn in list(p.callbacks):
            fn(pin, level, at_us)

    def level(self, pin: int) -> bool:
        """Current level of any set-up pin."""
        return self._pin(pin).level

    def writes(self, pin: int) -> list[PinWrite]:
        """The recorded writes to one pin, oldest first."""
        return [w for w in self.history if w.pin == pin]

    # -- internals --------------------------------------------------------------------------

    def _new_pin(self, pin: int, mode: str, level: bool) -> None:
        self._check_open()
        if pin in self._pins:
            raise ValueError(f"pin {pin} is already set up as an {self._pins[pin].mode}")
        self._pins[pin] = _Pin(mode, bool(level))

    def _pin(self, pin: int, mode: str | None = None) -> _Pin:
        self._check_open()
        p = self._pins.get(pin)
        if p is None:
            raise ValueError(f"pin {pin} is not set up")
        if mode is not None and p.mode != mode:
            raise ValueError(f"pin {pin} is an {p.mode}, not an {mode}")
        return p

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("pin backend is closed")
