"""The officer's controls: one button in, intents out; recorder state in, lights and buzz out.

Rules an officer relies on:

- a press starts a recording when the camera is ready (``buffering``, or ``fault``: the
  daemon decides whether it can); a press while ``booting`` or ``stopping`` is remembered
  and reported (``deferred``) as soon as the daemon reports ``buffering``;
- only a hold of ``hold_to_stop_s`` that *began while recording* stops it; a press (a knock)
  never does, and holding the very press that started a recording does not stop it;
- feedback follows the state the daemon reports, not the intents: the start buzz and the
  red LED mean the recorder really is recording.

What is shown per state is in :mod:`gpio.patterns`. The daemon calls :meth:`tick` regularly
(every 10 ms or so, or at :meth:`next_deadline_us`) and acts on the intents it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from gpio.backend import PinBackend
from gpio.devices import DEBOUNCE_S, HOLD_TO_STOP_S, Button, ButtonEvent, Haptic, Led
from gpio.patterns import (
    BUZZ_FAULT,
    BUZZ_REMINDER,
    BUZZ_START,
    BUZZ_STOP,
    LED_OFF,
    STATE_LEDS,
    Pattern,
)

State = Literal["booting", "buffering", "recording", "stopping", "fault"]
STATES: frozenset[str] = frozenset(get_args(State))
IntentKind = Literal["start", "stop"]


@dataclass(frozen=True, slots=True)
class Intent:
    """What the officer asked for, and when (the press, or the moment a hold became long).

    ``deferred``: a press made while the camera was not ready, reported now that it is.
    """

    kind: IntentKind
    at_us: int
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class ControlsConfig:
    """Pins (BCM numbers; placeholders until the board is fixed) and behaviour."""

    button_pin: int = 17
    red_led_pin: int = 27
    green_led_pin: int = 22
    haptic_pin: int = 23
    debounce_s: float = DEBOUNCE_S
    hold_to_stop_s: float = HOLD_TO_STOP_S
    reminder_interval_s: float = 120.0
    stealth: bool = False
    fault_buzz_interval_s: float = 10.0
    button_active_low: bool = True

    def __post_init__(self) -> None:
        pins = (self.button_pin, self.red_led_pin, self.green_led_pin, self.haptic_pin)
        if len(set(pins)) != len(pins):
            raise ValueError(f"controls pins must be distinct, got {pins}")
        if self.debounce_s < 0:
            raise ValueError("debounce_s must be >= 0")
        for name in ("hold_to_stop_s", "reminder_interval_s", "fault_buzz_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.hold_to_stop_s <= self.debounce_s:
            raise ValueError("hold_to_stop_s must be longer than the debounce")


@dataclass(frozen=True, slots=True)
class Indicator:
    """Names of what is shown right now, for a terminal UI."""

    red: str
    green: str
    haptic: str

    def __str__(self) -> str:
        return f"LED red: {self.red}, green: {self.green}, haptic: {self.haptic}"


@dataclass(frozen=True, slots=True)
class ControlsStatus:
    """Everything ``bwv status`` needs, stealth or not."""

    state: State
    fault: str | None
    stealth: bool
    pending_start_us: int | None
    indicator: Indicator


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


class OfficerControls:
    """Button, red and green LEDs and haptic motor, wired to the recorder's state.

    Starts in ``booting``. Times are capture-clock microseconds and must not go backwards.
    """

    def __init__(
        self, backend: PinBackend, config: ControlsConfig | None = None, *, start_us: int = 0
    ) -> None:
        cfg = config if config is not None else ControlsConfig()
        self.config = cfg
        self._button = Button(
            backend,
            cfg.button_pin,
            debounce_s=cfg.debounce_s,
            hold_s=cfg.hold_to_stop_s,
            active_low=cfg.button_active_low,
            start_us=start_us,
        )
        self._red = Led(backend, cfg.red_led_pin)
        self._green = Led(backend, cfg.green_led_pin)
        self._haptic = Haptic(backend, cfg.haptic_pin)
        self._state: State = "booting"
        self._fault_reason: str | None = None
        self._fault_shown = False
        self._stealth = cfg.stealth
        self._closed = False
        self._pending_start_us: int | None = None
        self._press_may_stop = False
        self._intents: list[Intent] = []
        self._next_reminder_us: int | None = None
        self._next_fault_buzz_us: int | None = None
        self._now = start_us
        self._render(start_us)

    # -- the daemon's side ------------------------------------------------------------------

    def tick(self, now_us: int) -> list[Intent]:
        """Advance to ``now_us``: read the button, play feedback; return new intents."""
        self._advance(now_us)
        self._render(now_us)
        intents, self._intents = self._intents, []
        return intents

    def set_state(self, state: State, now_us: int) -> None:
        """The recorder's state changed. Button events up to ``now_us`` see the old state."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; expected one of {sorted(STATES)}")
        self._advance(now_us)
        prev, self._state = self._state, state
        if state != prev:
            if state == "recording":
                self._buzz(BUZZ_START)
                self._next_reminder_us = now_us + _us(self.config.reminder_interval_s)
            else:
                self._next_reminder_us = None
                if prev == "recording" and state != "fault":
                    self._buzz(BUZZ_STOP)
            if state in ("buffering", "fault"):
                self._report_pending()
            elif state == "recording":
                self._pending_start_us = None
        self._update_fault(now_us)
        self._render(now_us)

    def fault(self, reason: str, now_us: int) -> None:
        """Report a fault (shown until :meth:`clear_fault`, whatever the state)."""
        self._advance(now_us)
        self._fault_reason = reason or "fault"
        self._update_fault(now_us)
        self._render(now_us)

    def clear_fault(self, now_us: int) -> None:
        self._advance(now_us)
        self._fault_reason = None
        self._update_fault(now_us)
        self._render(now_us)

    def set_stealth(self, stealth: bool, now_us: int) -> None:
        """Stealth: no light, no buzz (turning it on switches everything off at once)."""
        self._advance(now_us)
        self._stealth = stealth
        if stealth:
            self._haptic.stop()
        self._render(now_us)

    def close(self, now_us: int) -> None:
        """Switch lights and motor off (the backend stays the caller's to close)."""
        self._closed = True
        self._haptic.stop()
        self._render(max(now_us, self._now))

    # -- what is shown ----------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    def indicator(self) -> Indicator:
        return Indicator(self._red.name, self._green.name, self._haptic.name)

    def status(self) -> ControlsStatus:
        return ControlsStatus(
            state=self._state,
            fault=self._fault_reason,
            stealth=self._stealth,
            pending_start_us=self._pending_start_us,
            indicator=self.indicator(),
        )

    def next_deadline_us(self) -> int | None:
        """The next time :meth:`tick` has something to do (the simulator can jump there).

        A time at or before the last tick means "tick now"; ``None``: only an edge can
        change anything.
        """
        times = [
            self._button.next_deadline_us(),
            self._red.next_change_us(),
            self._green.next_change_us(),
            self._haptic.next_change_us(),
            self._next_reminder_us,
            self._next_fault_buzz_us,
            self._now if self._intents else None,
        ]
        return min((t for t in times if t is not None), default=None)

    # -- internals --------------------------------------------------------------------------

    @property
    def _fault_active(self) -> bool:
        return self._state == "fault" or self._fault_reason is not None

    def _advance(self, now_us: int) -> None:
        for event in self._button.tick(now_us):
            self._on_button(event)
        self._now = now_us
        if self._next_reminder_us is not None and now_us >= self._next_reminder_us:
            self._buzz(BUZZ_REMINDER)
            self._next_reminder_us = self._after(
                self._next_reminder_us, self.config.reminder_interval_s, now_us
            )
        if self._next_fault_buzz_us is not None and now_us >= self._next_fault_buzz_us:
            self._buzz(BUZZ_FAULT)
            self._next_fault_buzz_us = self._after(
                self._next_fault_buzz_us, self.config.fault_buzz_interval_s, now_us
            )

    @staticmethod
    def _after(due_us: int, interval_s: float, now_us: int) -> int:
        """The first of ``due_us + k * interval`` after ``now_us`` (missed ones are skipped)."""
        interval = _us(interval_s)
        return due_us + ((now_us - due_us) // interval + 1) * interval

    def _on_button(self, event: ButtonEvent) -> None:
        if event.kind == "press":
            self._press_may_stop = self._state == "recording"
            if self._state in ("buffering", "fault"):
                self._intents.append(Intent("start", event.at_us))
            elif self._state in ("booting", "stopping") and self._pending_start_us is None:
                self._pending_start_us = event.at_us
        elif event.kind == "hold" and self._press_may_stop and self._state == "recording":
            self._intents.append(Intent("stop", event.at_us))

    def _report_pending(self) -> None:
        if self._pending_start_us is not None:
            self._intents.append(Intent("start", self._pending_start_us, deferred=True))
        self._pending_start_us = None

    def _update_fault(self, now_us: int) -> None:
        if self._fault_active and not self._fault_shown:
            self._buzz(BUZZ_FAULT)
            self._next_fault_buzz_us = now_us + _us(self.config.fault_buzz_interval_s)
        elif not self._fault_active:
            self._next_fault_buzz_us = None
        self._fault_shown = self._fault_active

    def _buzz(self, pattern: Pattern) -> None:
        if not (self._stealth or self._closed):
            self._haptic.buzz(pattern)

    def _render(self, now_us: int) -> None:
        if self._stealth or self._closed:
            red, green = LED_OFF, LED_OFF
        else:
            red, green = STATE_LEDS["fault" if self._fault_active else self._state]
        for led, pattern in ((self._red, red), (self._green, green)):
            if led.pattern != pattern:
                led.play(pattern)
            led.tick(now_us)
        self._haptic.tick(now_us)
