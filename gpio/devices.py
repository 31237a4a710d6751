"""Button, LED and haptic motor on top of a :class:`gpio.backend.PinBackend`.

No threads, no sleeps, no clock: each device is advanced by ``tick(now_us)`` with capture
time, and everything time-based (debounce, hold, blink, buzz) is worked out there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from gpio.backend import PinBackend
from gpio.patterns import LED_OFF, LED_ON, Pattern

ButtonEventKind = Literal["press", "hold", "release"]

# The officer's hold-to-stop: a recording stops only on a hold this long, so a knock cannot
# end it. The one place the default is written: the configuration and the controls use it.
HOLD_TO_STOP_S = 3.0
# A button level counts once stable this long (seconds, as gpiozero's ``bounce_time``).
DEBOUNCE_S = 0.030


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    """``press``/``release`` at the start of the debounced level; ``hold`` when it got long."""

    kind: ButtonEventKind
    at_us: int


class Button:
    """A debounced push button: ``press``, one ``hold`` after ``hold_s``, ``release``.

    A level counts only once it has been stable for ``debounce_s`` seconds; shorter glitches are
    ignored (also during a hold, which they do not interrupt). Events carry the time the
    debounced level *began* (the press instant, not the moment it was confirmed) and are
    returned by :meth:`tick` once they are certain, in time order. Edges are only queued by
    the backend's callback (which may run on another thread) and worked through in
    :meth:`tick`, so the results do not depend on how often it is called. A button already
    held when the device is created yields a press (a press at boot is not lost).
    """

    def __init__(
        self,
        backend: PinBackend,
        pin: int,
        *,
        debounce_s: float = DEBOUNCE_S,
        hold_s: float = HOLD_TO_STOP_S,
        active_low: bool = True,
        pull_up: bool | None = None,
        start_us: int = 0,
    ) -> None:
        if debounce_s < 0:
            raise ValueError("debounce_s must be >= 0")
        if hold_s <= 0:
            raise ValueError("hold_s must be > 0")
        self.pin = pin
        self._debounce_us = round(debounce_s * 1_000_000)
        self._hold_us = round(hold_s * 1_000_000)
        self._pressed_level = not active_low
        backend.setup_input(pin, pull_up=active_low if pull_up is None else pull_up)
        self._edges: deque[tuple[bool, int]] = deque()
        backend.add_edge_callback(pin, self._on_edge)
        self._raw = backend.read(pin) == self._pressed_level
        self._raw_since = start_us
        self._stable = False
        self._stable_since = start_us
        self._held = False
        self._now = start_us

    @property
    def pressed(self) -> bool:
        """The debounced state as of the last tick."""
        return self._stable

    @property
    def held(self) -> bool:
        """Whether the current press has already produced its ``hold``."""
        return self._stable and self._held

    def tick(self, now_us: int) -> list[ButtonEvent]:
        """Work through the edges up to ``now_us``; return the events now certain."""
        if now_us < self._now:
            raise ValueError(f"time went backwards: {now_us} < {self._now}")
        out: list[ButtonEvent] = []
        while self._edges and self._edges[0][1] <= now_us:
            pressed, at_us = self._edges.popleft()
            at_us = max(at_us, self._now)  # an edge delivered late cannot rewrite the past
            self._settle(at_us, out)
            self._now = at_us
            if pressed != self._raw:
                self._raw, self._raw_since = pressed, at_us
        self._settle(now_us, out)
        self._now = now_us
        return out

    def next_deadline_us(self) -> int | None:
        """When a tick could next produce an event; ``None`` if only an edge can."""
        if self._edges:
            return self._edges[0][1]
        if self._raw != self._stable:
            return self._raw_since + self._debounce_us
        if self._stable and not self._held:
            return self._stable_since + self._hold_us
        return None

    def _on_edge(self, pin: int, level: bool, at_us: int) -> None:
        self._edges.append((level == self._pressed_level, at_us))

    def _settle(self, t_us: int, out: list[ButtonEvent]) -> None:
        """Resolve what is known at ``t_us``, the raw level unchanged since ``_raw_since``."""
        if self._raw != self._stable and t_us - self._raw_since >= self._debounce_us:
            self._check_hold(self._raw_since, out)
            self._stable, self._stable_since, self._held = self._raw, self._raw_since, False
            out.append(ButtonEvent("press" if self._stable else "release", self._stable_since))
        # Pressed is certain up to t_us, or only up to a change that may still be a glitch.
        self._check_hold(t_us if self._raw == self._stable else self._raw_since, out)

    def _check_hold(self, pressed_until_us: int, out: list[ButtonEvent]) -> None:
        if (
            self._stable
            and not self._held
            and pressed_until_us - self._stable_since >= self._hold_us
        ):
            self._held = True
            out.append(ButtonEvent("hold", self._stable_since + self._hold_us))


class _PatternOutput:
    """An output pin that follows a pattern, writing only when the level changes."""

    def __init__(self, backend: PinBackend, pin: int, active_high: bool) -> None:
        self.pin = pin
        self._backend = backend
        self._active_high = active_high
        backend.setup_output(pin, initial=not active_high)
        self._active = False
        self._now: int | None = None

    @property
    def active(self) -> bool:
        """Whether the output is on (lit, buzzing) as last written."""
        return self._active

    def _set(self, active: bool) -> None:
        if active != self._active:
            self._backend.write(self.pin, active == self._active_high)
            self._active = active


class Led(_PatternOutput):
    """An LED: :meth:`on`, :meth:`off` or :meth:`play` a pattern; :meth:`tick` drives it.

    A new pattern starts at the next tick. A one-shot pattern leaves the LED off.
    """

    def __init__(self, backend: PinBackend, pin: int, *, active_high: bool = True) -> None:
        super().__init__(backend, pin, active_high)
        self._pattern = LED_OFF
        self._start_us: int | None = None

    @property
    def pattern(self) -> Pattern:
        return self._pattern

    @property
    def name(self) -> str:
        """Name of the pattern shown, e.g. ``"on"``, ``"blink-slow"``."""
        return self._pattern.name

    def on(self) -> None:
        self.play(LED_ON)

    def off(self) -> None:
        self.play(LED_OFF)

    def play(self, pattern: Pattern) -> None:
        self._pattern, self._start_us = pattern, None

    def tick(self, now_us: int) -> None:
        self._now = now_us
        if self._start_us is None:
            self._start_us = now_us
        level = self._pattern.level_at(now_us - self._start_us)
        if level is None:
            self._pattern, level = LED_OFF, False
        self._set(level)

    def next_change_us(self) -> int | None:
        """When the next tick would change the LED (at or before the last tick: tick now)."""
        if self._start_us is None:
            return self._now if self._now is not None else 0
        now = self._now if self._now is not None else self._start_us
        b = self._pattern.next_boundary_us(now - self._start_us)
        return None if b is None else self._start_us + b


class Haptic(_PatternOutput):
    """A vibration motor playing one-shot buzz patterns, one after another.

    :meth:`buzz` queues a pattern (at most ``max_queue`` waiting; more are dropped); each
    starts at the tick after the previous one ends. Patterns must end with a rest, so two
    queued buzzes never merge into one.
    """

    def __init__(
        self, backend: PinBackend, pin: int, *, active_high: bool = True, max_queue: int = 4
    ) -> None:
        super().__init__(backend, pin, active_high)
        self._queue: deque[Pattern] = deque()
        self._max_queue = max_queue
        self._current: Pattern | None = None
        self._start_us = 0

    @property
    def name(self) -> str:
        """Name of the buzz playing, or ``"idle"``."""
        return self._current.name if self._current is not None else "idle"

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    def buzz(self, pattern: Pattern) -> None:
        if pattern.repeat or pattern.steps[-1][0]:
            raise ValueError(f"buzz {pattern.name!r} must be one-shot and end with a rest")
        if len(self._queue) < self._max_queue:
            self._queue.append(pattern)

    def stop(self) -> None:
        """Drop the current and queued buzzes; the motor stops at the next tick."""
        self._queue.clear()
        self._current = None

    def tick(self, now_us: int) -> None:
        self._now = now_us
        while True:
            if self._current is None:
                if not self._queue:
                    self._set(False)
                    return
                self._current, self._start_us = self._queue.popleft(), now_us
            level = self._current.level_at(now_us - self._start_us)
            if level is not None:
                self._set(level)
                return
            self._current = None

    def next_change_us(self) -> int | None:
        """When the next tick would change the motor (at or before the last tick: tick now)."""
        if self._current is None:
            if self._queue or self._active:
                return self._now if self._now is not None else 0
            return None
        now = self._now if self._now is not None else self._start_us
        b = self._current.next_boundary_us(now - self._start_us)
        return self._start_us + (b if b is not None else self._current.duration_us)
