"""What an officer notices: presses, holds, lights and buzzes, in capture-clock time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.clock import VirtualClock
from gpio.controls import ControlsConfig, Indicator, Intent, OfficerControls
from gpio.patterns import BUZZ_PATTERNS, LED_FAULT, LED_FAULT_ALT, LED_PATTERNS, STATE_LEDS
from gpio.sim import PinWrite, SimPinBackend

MS = 1000
S = 1_000_000
CFG = ControlsConfig()
BUTTON, RED, GREEN, HAPTIC = CFG.button_pin, CFG.red_led_pin, CFG.green_led_pin, CFG.haptic_pin


class Officer:
    """A simulated camera: virtual clock, simulated pins, the controls, a 10 ms tick loop."""

    def __init__(self, config: ControlsConfig = CFG, state: str | None = "buffering") -> None:
        self.clock = VirtualClock()
        self.pins = SimPinBackend(self.clock)
        self.controls = OfficerControls(self.pins, config)
        self.intents: list[Intent] = []
        if state is not None:
            self.set_state(state)

    @property
    def now(self) -> int:
        return self.clock.now_us()

    def run(self, duration_us: int, step_us: int = 10 * MS) -> list[Intent]:
        """Tick for ``duration_us``; return the intents seen meanwhile."""
        new: list[Intent] = []
        end = self.now + duration_us
        while self.now < end:
            self.clock.set(min(self.now + step_us, end))
            new += self.controls.tick(self.now)
        self.intents += new
        return new

    def press(self, hold_us: int, then_us: int = S) -> list[Intent]:
        """Push the button for ``hold_us``, release, keep ticking ``then_us``."""
        self.pins.drive(BUTTON, False, self.now)
        new = self.run(hold_us)
        self.pins.drive(BUTTON, True, self.now)
        return new + self.run(then_us)

    def set_state(self, state: str) -> None:
        self.controls.set_state(state, self.now)

    def buzzes(self, since_us: int = 0) -> list[tuple[int, int]]:
        """(start, length) of every haptic on-period since ``since_us``."""
        out, on_at = [], None
        for w in self.pins.writes(HAPTIC):
            if w.level:
                on_at = w.at_us
            elif on_at is not None:
                if on_at >= since_us:
                    out.append((on_at, w.at_us - on_at))
                on_at = None
        return out

    def buzz_shapes(self, since_us: int = 0) -> list[list[int]]:
        """Buzzes grouped into bursts (pulses less than 1 s apart), as lists of lengths (ms)."""
        groups: list[list[tuple[int, int]]] = []
        for start, length in self.buzzes(since_us):
            if groups and start - (groups[-1][-1][0] + groups[-1][-1][1]) < S:
                groups[-1].append((start, length))
            else:
                groups.append([(start, length)])
        return [[length // MS for _, length in g] for g in groups]


# -- starting and stopping -------------------------------------------------------------------


def test_a_press_starts_once():
    o = Officer()
    assert o.press(200 * MS) == [Intent("start", 0)]
    assert o.run(10 * S) == []


def test_a_glitch_shorter_than_debounce_does_nothing():
    o = Officer()
    assert o.press(20 * MS) == []
    o.set_state("recording")
    assert o.press(20 * MS, then_us=10 * S) == []


def test_a_press_while_recording_does_not_stop():
    o = Officer()
    o.press(200 * MS)
    o.set_state("recording")
    for _ in range(5):
        assert o.press(500 * MS) == []
    assert o.controls.state == "recording"


def test_holding_2_9_s_does_not_stop_but_3_s_does():
    o = Officer()
    o.set_state("recording")
    o.run(S)
    assert o.press(2_900 * MS, then_us=5 * S) == []
    t = o.now
    assert o.press(3 * S) == [Intent("stop", t + 3 * S)]


def test_stop_is_reported_at_3_s_while_still_held():
    o = Officer()
    o.set_state("recording")
    o.pins.drive(BUTTON, False, 0)
    assert o.run(2_990 * MS) == []
    assert o.run(10 * MS) == [Intent("stop", 3 * S)]
    assert o.run(10 * S) == []  # holding on does not stop again


def test_holding_the_press_that_started_the_recording_does_not_stop_it():
    o = Officer()
    o.pins.drive(BUTTON, False, 0)
    assert o.run(50 * MS) == [Intent("start", 0)]
    o.set_state("recording")  # the daemon started; the officer is still holding
    assert o.run(10 * S) == []


def test_hold_to_stop_is_configurable():
    o = Officer(ControlsConfig(hold_to_stop_s=1.5), state="recording")
    assert o.press(1_400 * MS) == []
    assert [i.kind for i in o.press(1_500 * MS)] == ["stop"]


def test_a_press_during_boot_is_honoured_when_the_camera_is_up():
    o = Officer(state=None)
    assert o.controls.state == "booting"
    assert o.press(100 * MS, then_us=5 * S) == []
    assert o.press(100 * MS, then_us=5 * S) == []  # a second press: still one start
    assert o.controls.status().pending_start_us == 0
    o.set_state("buffering")
    assert o.run(10 * MS) == [Intent("start", 0, deferred=True)]
    assert o.run(10 * S) == []
    assert o.controls.status().pending_start_us is None


def test_a_press_while_stopping_starts_again_once_ready():
    o = Officer(state="recording")
    o.press(3 * S)
    o.set_state("stopping")
    t = o.now
    assert o.press(100 * MS) == []
    o.set_state("buffering")
    assert o.run(10 * MS) == [Intent("start", t, deferred=True)]


def test_no_press_during_boot_means_no_start():
    o = Officer(state=None)
    o.run(10 * S)
    o.set_state("buffering")
    assert o.run(10 * S) == []


# -- feedback --------------------------------------------------------------------------------


def test_start_buzz_and_red_on_then_two_buzzes_and_red_off_at_stop():
    o = Officer()
    o.run(S)
    o.press(100 * MS)
    t_rec = o.now
    o.set_state("recording")
    o.run(S)
    assert o.pins.level(RED) is True
    assert o.buzz_shapes() == [[300]]
    assert o.buzzes()[0][0] == t_rec
    assert o.controls.indicator().red == "on"
    o.press(3 * S)
    o.set_state("stopping")
    o.run(S)
    o.set_state("buffering")
    o.run(S)
    assert o.pins.level(RED) is False
    assert o.buzz_shapes() == [[300], [100, 100]]


def test_reminder_buzz_every_interval_while_recording_and_never_otherwise():
    o = Officer()
    o.run(10 * MS)
    assert o.buzzes() == []
    o.run(10 * 60 * S, step_us=50 * MS)  # buffering: silent
    assert o.buzzes() == []
    start = o.now
    o.set_state("recording")
    o.run(10 * 60 * S - 10 * MS, step_us=10 * MS)
    starts = [b for b, _ in o.buzzes(start + S)]
    assert starts == [start + k * 120 * S for k in range(1, 5)]
    o.run(200 * MS)  # the fifth falls due
    assert [b for b, _ in o.buzzes(start + S)][-1] == start + 600 * S
    assert o.buzz_shapes(start + S) == [[100]] * 5
    o.set_state("stopping")
    o.set_state("buffering")
    stopped = o.now
    o.run(10 * 60 * S, step_us=50 * MS)
    assert o.buzz_shapes(stopped) == [[100, 100]]  # the stop buzz, no more reminders


def test_reminder_interval_is_configurable():
    o = Officer(ControlsConfig(reminder_interval_s=30), state="recording")
    o.run(95 * S)
    assert [b for b, _ in o.buzzes(S)] == [30 * S, 60 * S, 90 * S]


def test_slow_green_blink_while_buffering():
    o = Officer()
    o.run(6 * S)
    greens = [(w.level, w.at_us) for w in o.pins.writes(GREEN)]
    ons = [t for level, t in greens if level]
    assert ons == [0, 2 * S, 4 * S, 6 * S]
    assert all(t - on == 100 * MS for (level, t), on in zip(greens[1::2], ons, strict=False))
    assert o.pins.writes(RED) == []
    assert str(o.controls.indicator()) == "LED red: off, green: blink-slow, haptic: idle"


def test_booting_shows_solid_green():
    o = Officer(state=None)
    o.run(10 * S)
    assert o.pins.writes(GREEN) == [PinWrite(GREEN, True, 0)]
    assert o.controls.indicator() == Indicator("off", "on", "idle")


def test_stealth_makes_no_output_writes_at_all_but_still_reports():
    o = Officer(ControlsConfig(stealth=True), state=None)
    o.press(100 * MS)
    o.set_state("buffering")
    o.run(5 * S)
    o.set_state("recording")
    o.run(5 * 60 * S, step_us=50 * MS)
    o.controls.fault("storage nearly full", o.now)
    o.run(60 * S)
    o.press(3 * S)
    o.set_state("stopping")
    o.set_state("fault")
    o.run(60 * S)
    o.controls.close(o.now)
    assert o.pins.history == []
    assert not any(o.pins.level(p) for p in (RED, GREEN, HAPTIC))
    assert [i.kind for i in o.intents] == ["start", "stop"]
    status = o.controls.status()
    assert (status.state, status.fault, status.stealth) == ("fault", "storage nearly full", True)
    assert status.indicator == Indicator("off", "off", "idle")


def test_turning_stealth_on_goes_dark_at_once_and_off_restores():
    o = Officer(state="recording")
    o.run(100 * MS)
    assert o.pins.level(RED) and o.pins.level(HAPTIC)
    o.controls.set_stealth(True, o.now)
    assert not any(o.pins.level(p) for p in (RED, GREEN, HAPTIC))
    n = len(o.pins.history)
    o.run(5 * 60 * S, step_us=50 * MS)  # reminders fall due: still nothing
    assert len(o.pins.history) == n
    o.controls.set_stealth(False, o.now)
    assert o.pins.level(RED)


def fault_buzz_times(o: Officer, since_us: int) -> list[int]:
    return [b for b, _ in o.buzzes(since_us)]


def test_fault_is_shown_on_both_leds_with_three_buzzes_every_10_s():
    o = Officer()
    o.run(S)
    t = o.now
    o.controls.fault("camera lost", t)
    o.run(35 * S)
    assert o.controls.indicator() == Indicator("fault", "fault-alt", "idle")
    assert o.buzz_shapes(t) == [[100, 100, 100]] * 4
    assert [g[0] for g in _burst_starts(o, t)] == [t, t + 10 * S, t + 20 * S, t + 30 * S]
    # red and green alternate: never both lit, never both dark for long
    o.run(10 * MS)
    for _ in range(50):
        o.run(10 * MS)
        assert o.pins.level(RED) != o.pins.level(GREEN)
    assert o.controls.status().fault == "camera lost"
    o.controls.clear_fault(o.now)
    o.run(30 * S)
    assert o.controls.indicator().green == "blink-slow"
    assert o.buzz_shapes(t + 31 * S) == []


def _burst_starts(o: Officer, since_us: int) -> list[list[int]]:
    groups: list[list[int]] = []
    for start, _ in o.buzzes(since_us):
        if groups and start - groups[-1][-1] < S:
            groups[-1].append(start)
        else:
            groups.append([start])
    return groups


def test_fault_state_from_the_daemon_shows_the_fault_pattern():
    o = Officer()
    o.set_state("fault")
    o.run(S)
    assert o.controls.indicator().red == "fault"
    assert o.buzz_shapes() == [[100, 100, 100]]


def trace(o: Officer, pins: tuple[int, ...], duration_us: int) -> list[tuple[bool, ...]]:
    """Sample the pins every 10 ms for ``duration_us``."""
    out = []
    for _ in range(duration_us // (10 * MS)):
        o.run(10 * MS)
        out.append(tuple(o.pins.level(p) for p in pins))
    return out


def test_fault_pattern_differs_from_every_other_pattern():
    # as constants
    fault = {LED_FAULT, LED_FAULT_ALT}
    assert all(p.steps not in {f.steps for f in fault} for p in LED_PATTERNS if p not in fault)
    buzz_fault = next(p for p in BUZZ_PATTERNS if p.name == "buzz-fault")
    assert sum(level for level, _ in buzz_fault.steps) == 3
    assert all(
        sum(level for level, _ in p.steps) != 3 for p in BUZZ_PATTERNS if p is not buzz_fault
    )
    # as seen: what both LEDs show over 4 s in each state
    seen = {}
    for state in STATE_LEDS:
        o = Officer(state=state)
        seen[state] = trace(o, (RED, GREEN), 4 * S)
    others = [v for k, v in seen.items() if k != "fault"]
    assert seen["fault"] not in others
    assert all(red != green for red, green in seen["fault"])  # red and green alternate

    def both_blink(tr: list[tuple[bool, ...]]) -> bool:
        return len({r for r, _ in tr}) == 2 and len({g for _, g in tr}) == 2

    assert both_blink(seen["fault"])
    assert not any(both_blink(tr) for tr in others)  # only a fault moves both LEDs


def test_next_deadline_lets_the_simulator_jump_and_see_the_same_thing():
    def scenario(stepper) -> tuple[list[Intent], list[PinWrite]]:
        o = Officer(state=None)
        o.pins.drive(BUTTON, False, 5 * S)
        o.pins.drive(BUTTON, True, 5 * S + 200 * MS)
        stepper(o, 10 * S)
        o.set_state("buffering")
        stepper(o, 10 * S)
        o.set_state("recording")
        stepper(o, 250 * S)
        o.pins.drive(BUTTON, False, o.now)
        stepper(o, 4 * S)
        o.pins.drive(BUTTON, True, o.now)
        o.set_state("stopping")
        stepper(o, S)
        o.set_state("buffering")
        stepper(o, 5 * S)
        return o.intents, o.pins.history

    def every_ms(o: Officer, duration_us: int) -> None:
        o.run(duration_us, step_us=MS)

    def jump(o: Officer, duration_us: int) -> None:
        end = o.now + duration_us
        while o.now < end:
            nxt = o.controls.next_deadline_us()
            o.clock.set(end if nxt is None else min(max(nxt, o.now + 1), end))
            o.intents += o.controls.tick(o.now)

    assert scenario(every_ms) == scenario(jump)


def test_config_is_checked():
    with pytest.raises(ValueError):
        ControlsConfig(red_led_pin=CFG.green_led_pin)
    with pytest.raises(ValueError):
        ControlsConfig(hold_to_stop_s=0)
    with pytest.raises(ValueError):
        OfficerControls(SimPinBackend(VirtualClock())).set_state("paused", 0)  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 29 * MS), max_size=60), st.sampled_from(sorted(STATE_LEDS)))
def test_glitches_alone_never_produce_an_intent(glitches, state):
    o = Officer(state=state)
    for n in glitches:
        o.pins.drive(BUTTON, False, o.now)
        o.run(n, step_us=MS)
        o.pins.drive(BUTTON, True, o.now)
        o.run(n, step_us=MS)
    o.set_state("buffering")
    assert o.run(5 * S) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5 * S), min_size=1, max_size=12))
def test_while_recording_only_holds_of_3_s_stop(presses):
    o = Officer(state="recording")
    expected = []
    for n in presses:
        if n >= 3 * S:
            expected.append(Intent("stop", o.now + 3 * S))
        o.press(n, then_us=100 * MS)
    assert o.intents == expected
