"""Every light and buzz the officer can see or feel, defined in one place.

A :class:`Pattern` is a tuple of ``(level, duration_ms)`` steps, played once or repeated.
``STATE_LEDS`` says what the two LEDs show in each recorder state:

==========  ==============  ===========================================================
state       red             green
==========  ==============  ===========================================================
booting     off             on (solid: busy, a press is remembered until ready)
buffering   off             blink-slow (100 ms on / 1900 ms off: ready, pre-recording)
recording   on              off
stopping    off             on (solid: busy, as booting)
fault       fault (5 Hz)    fault-alt (5 Hz, opposite phase: red and green alternate)
==========  ==============  ===========================================================

Buzzes (one-shot, each ends with a rest so queued buzzes stay apart): start = one long
(300 ms), stop = two short, reminder = one short, fault = three short (repeated every
``fault_buzz_interval_s`` by the controls).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pattern:
    """A named on/off sequence: ``steps`` of ``(level, duration_ms)``, repeating or one-shot."""

    name: str
    steps: tuple[tuple[bool, int], ...]
    repeat: bool = True

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"pattern {self.name!r} has no steps")
        for level, ms in self.steps:
            if not isinstance(level, bool) or not isinstance(ms, int) or ms <= 0:
                raise ValueError(f"pattern {self.name!r}: bad step {(level, ms)!r}")

    @property
    def duration_us(self) -> int:
        """Length of one pass through the steps."""
        return sum(ms for _, ms in self.steps) * 1000

    def level_at(self, elapsed_us: int) -> bool | None:
        """The level ``elapsed_us`` after the start; ``None`` once a one-shot pattern is over."""
        elapsed_us = max(elapsed_us, 0)
        if elapsed_us >= self.duration_us:
            if not self.repeat:
                return None
            elapsed_us %= self.duration_us
        for level, ms in self.steps:
            if elapsed_us < ms * 1000:
                return level
            elapsed_us -= ms * 1000
        raise AssertionError("unreachable")

    def next_boundary_us(self, elapsed_us: int) -> int | None:
        """Elapsed time of the next step boundary after ``elapsed_us``.

        ``None`` if the level can never change again (a solid pattern, a finished one-shot).
        """
        elapsed_us = max(elapsed_us, 0)
        total = self.duration_us
        if self.repeat:
            if len({level for level, _ in self.steps}) == 1:
                return None
            t = elapsed_us // total * total
        elif elapsed_us >= total:
            return None
        else:
            t = 0
        for _, ms in self.steps:
            t += ms * 1000
            if t > elapsed_us:
                return t
        raise AssertionError("unreachable")


# -- LEDs ----------------------------------------------------------------------------------

LED_OFF = Pattern("off", ((False, 1000),))
LED_ON = Pattern("on", ((True, 1000),))
LED_BLINK_SLOW = Pattern("blink-slow", ((True, 100), (False, 1900)))
LED_FAULT = Pattern("fault", ((True, 100), (False, 100)))
LED_FAULT_ALT = Pattern("fault-alt", ((False, 100), (True, 100)))

STATE_LEDS: dict[str, tuple[Pattern, Pattern]] = {
    # state: (red, green)
    "booting": (LED_OFF, LED_ON),
    "buffering": (LED_OFF, LED_BLINK_SLOW),
    "recording": (LED_ON, LED_OFF),
    "stopping": (LED_OFF, LED_ON),
    "fault": (LED_FAULT, LED_FAULT_ALT),
}

# -- haptic --------------------------------------------------------------------------------

BUZZ_START = Pattern("buzz-start", ((True, 300), (False, 200)), repeat=False)
BUZZ_STOP = Pattern(
    "buzz-stop", ((True, 100), (False, 150), (True, 100), (False, 200)), repeat=False
)
BUZZ_REMINDER = Pattern("buzz-reminder", ((True, 100), (False, 200)), repeat=False)
BUZZ_FAULT = Pattern(
    "buzz-fault",
    ((True, 100), (False, 100), (True, 100), (False, 100), (True, 100), (False, 200)),
    repeat=False,
)

LED_PATTERNS = (LED_OFF, LED_ON, LED_BLINK_SLOW, LED_FAULT, LED_FAULT_ALT)
BUZZ_PATTERNS = (BUZZ_START, BUZZ_STOP, BUZZ_REMINDER, BUZZ_FAULT)
