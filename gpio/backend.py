"""The pin interface every GPIO backend implements (the simulator now, RPi.GPIO later).

Modelled on gpiozero's pin factories, only smaller. Levels are electrical (``True`` = high);
what "pressed" or "lit" means is the devices' business. Times are integer microseconds of the
injected capture clock (:class:`base.clock.Clock`): a backend timestamps each input edge
when it happens and passes that time on, so nothing else in ``gpio`` reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

EdgeCallback = Callable[[int, bool, int], None]
"""``fn(pin, level, at_us)``: an input changed to ``level`` at capture time ``at_us``.

Backends may call it from their own thread (RPi.GPIO does); the devices only enqueue there.
"""


class PinBackend(Protocol):
    """Digital pins: inputs with a pull and edge callbacks, outputs with a level."""

    def setup_input(self, pin: int, pull_up: bool) -> None:
        """Make ``pin`` an input, pulled up (``True``) or down."""
        ...

    def setup_output(self, pin: int, initial: bool) -> None:
        """Make ``pin`` an output driven at ``initial`` from the start."""
        ...

    def read(self, pin: int) -> bool:
        """The pin's current level."""
        ...

    def write(self, pin: int, level: bool) -> None:
        """Drive an output pin to ``level``."""
        ...

    def add_edge_callback(self, pin: int, fn: EdgeCallback) -> None:
        """Call ``fn`` on every change of the input ``pin`` (both edges)."""
        ...

    def close(self) -> None:
        """Release the pins; no call is valid afterwards."""
        ...
