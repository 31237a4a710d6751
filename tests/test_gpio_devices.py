"""Button, LED, haptic and the simulated pins: behaviour in capture-clock time, no sleeps."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.clock import VirtualClock
from gpio.devices import Button, ButtonEvent, Haptic, Led
from gpio.patterns import (
    BUZZ_PATTERNS,
    BUZZ_START,
    BUZZ_STOP,
    LED_BLINK_SLOW,
    LED_PATTERNS,
    Pattern,
)
from gpio.sim import PinWrite, SimPinBackend

MS = 1000
S = 1_000_000
PIN = 5


def make_button(**kw) -> tuple[SimPinBackend, Button]:
    backend = SimPinBackend(VirtualClock())
    return backend, Button(backend, PIN, **kw)


def run(button: Button, until_us: int, step_us: int = MS, start_us: int = 0) -> list[ButtonEvent]:
    events: list[ButtonEvent] = []
    for t in range(start_us, until_us + 1, step_us):
        events += button.tick(t)
    return events


# -- simulated pins --------------------------------------------------------------------------


def test_sim_delivers_edges_with_their_time_only_on_change():
    backend = SimPinBackend(VirtualClock())
    backend.setup_input(PIN, pull_up=True)
    seen = []
    backend.add_edge_callback(PIN, lambda pin, level, at: seen.append((pin, level, at)))
    assert backend.read(PIN) is True
    backend.drive(PIN, True, 5)  # no change: no edge
    backend.drive(PIN, False, 10)
    backend.drive(PIN, False, 12)
    backend.drive(PIN, True, 20)
    assert seen == [(PIN, False, 10), (PIN, True, 20)]
    with pytest.raises(ValueError):
        backend.drive(PIN, False, 19)


def test_sim_records_writes_with_clock_time():
    clock = VirtualClock()
    backend = SimPinBackend(clock)
    backend.setup_output(7, initial=False)
    clock.set(42)
    backend.write(7, True)
    backend.write(7, True)
    assert backend.history == [PinWrite(7, True, 42), PinWrite(7, True, 42)]
    assert backend.level(7) is True
    assert backend.writes(7) == backend.history


def test_sim_rejects_misuse():
    backend = SimPinBackend(VirtualClock())
    backend.setup_output(7, initial=False)
    with pytest.raises(ValueError):
        backend.setup_input(7, pull_up=True)  # two devices on one pin
    with pytest.raises(ValueError):
        backend.drive(7, True, 0)  # outputs are not driven from outside
    with pytest.raises(ValueError):
        backend.write(8, True)  # not set up
    backend.close()
    with pytest.raises(RuntimeError):
        backend.write(7, True)


# -- patterns --------------------------------------------------------------------------------


def test_pattern_levels_and_boundaries():
    p = Pattern("p", ((True, 100), (False, 300)))
    assert [p.level_at(t * MS) for t in (0, 99, 100, 399, 400, 500)] == [
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert p.next_boundary_us(0) == 100 * MS
    assert p.next_boundary_us(100 * MS) == 400 * MS
    assert p.next_boundary_us(450 * MS) == 500 * MS
    once = Pattern("once", ((True, 100), (False, 100)), repeat=False)
    assert once.level_at(199 * MS) is False
    assert once.level_at(200 * MS) is None
    assert once.next_boundary_us(150 * MS) == 200 * MS
    assert once.next_boundary_us(200 * MS) is None
    assert Pattern("solid", ((True, 5),)).next_boundary_us(0) is None


@pytest.mark.parametrize("steps", [(), ((True, 0),), ((True, -1),), ((1, 10),), ((True, 1.5),)])
def test_pattern_rejects_bad_steps(steps):
    with pytest.raises(ValueError):
        Pattern("bad", steps)


def test_named_patterns_are_distinct():
    for group in (LED_PATTERNS, BUZZ_PATTERNS):
        assert len({p.name for p in group}) == len(group)
        assert len({(p.steps, p.repeat) for p in group}) == len(group)


# -- button ----------------------------------------------------------------------------------


def test_press_is_reported_after_debounce_with_the_press_time():
    backend, button = make_button()
    assert backend.read(PIN) is True  # active low, pulled up
    backend.drive(PIN, False, 100 * MS)
    assert run(button, 129 * MS) == []
    assert button.tick(130 * MS) == [ButtonEvent("press", 100 * MS)]
    assert button.pressed
    backend.drive(PIN, True, 500 * MS)
    assert run(button, 600 * MS, start_us=131 * MS) == [ButtonEvent("release", 500 * MS)]


def test_glitch_shorter_than_debounce_is_ignored():
    backend, button = make_button()
    backend.drive(PIN, False, 10 * MS)
    backend.drive(PIN, True, 39 * MS)  # 29 ms low
    assert run(button, 2 * S) == []


def test_contact_bounce_gives_one_press_at_the_start_of_the_stable_level():
    backend, button = make_button()
    for t, level in [(0, False), (2, True), (4, False), (5, True), (7, False)]:
        backend.drive(PIN, level, (1000 + t) * MS)
    for t, level in [(500, True), (501, False), (503, True)]:
        backend.drive(PIN, level, (1000 + t) * MS)
    assert run(button, 3 * S) == [
        ButtonEvent("press", 1007 * MS),
        ButtonEvent("release", 1503 * MS),
    ]


def test_hold_comes_once_after_hold_time_and_not_before():
    backend, button = make_button()
    backend.drive(PIN, False, 0)
    assert [e.kind for e in run(button, 2_999_999, step_us=10 * MS)] == ["press"]
    assert button.tick(3 * S) == [ButtonEvent("hold", 3 * S)]
    assert run(button, 10 * S, step_us=10 * MS, start_us=3 * S + 10 * MS) == []
    backend.drive(PIN, True, 10 * S)
    assert button.tick(11 * S) == [ButtonEvent("release", 10 * S)]


def test_release_at_2_9_s_is_no_hold():
    backend, button = make_button()
    backend.drive(PIN, False, 0)
    backend.drive(PIN, True, 2_900 * MS)
    assert [e.kind for e in run(button, 10 * S, step_us=10 * MS)] == ["press", "release"]


def test_a_glitch_during_a_hold_does_not_restart_it():
    backend, button = make_button()
    backend.drive(PIN, False, 0)
    backend.drive(PIN, True, 2 * S)
    backend.drive(PIN, False, 2 * S + 20 * MS)
    assert run(button, 4 * S) == [ButtonEvent("press", 0), ButtonEvent("hold", 3 * S)]


def test_hold_is_judged_even_when_ticks_are_sparse():
    backend, button = make_button()
    backend.drive(PIN, False, 0)
    backend.drive(PIN, True, 3 * S)  # held exactly 3 s, nobody ticked meanwhile
    assert button.tick(60 * S) == [
        ButtonEvent("press", 0),
        ButtonEvent("hold", 3 * S),
        ButtonEvent("release", 3 * S),
    ]


def test_active_high_button():
    backend, button = make_button(active_low=False)
    assert backend.read(PIN) is False  # pulled down
    backend.drive(PIN, True, 0)
    backend.drive(PIN, False, 100 * MS)
    assert [e.kind for e in run(button, S)] == ["press", "release"]


def test_button_already_held_at_start_is_a_press():
    class HeldDown(SimPinBackend):
        def setup_input(self, pin: int, pull_up: bool) -> None:
            super().setup_input(pin, pull_up)
            self.drive(pin, False, 0)

    button = Button(HeldDown(VirtualClock()), PIN, start_us=5 * S)
    assert button.tick(5 * S + 30 * MS) == [ButtonEvent("press", 5 * S)]


def test_time_cannot_go_backwards():
    _, button = make_button()
    button.tick(10)
    with pytest.raises(ValueError):
        button.tick(9)


def test_next_deadline_points_at_debounce_then_hold():
    backend, button = make_button()
    assert button.next_deadline_us() is None
    backend.drive(PIN, False, 0)
    assert button.next_deadline_us() == 0  # an edge is waiting
    button.tick(1)
    assert button.next_deadline_us() == 30 * MS
    button.tick(30 * MS)
    assert button.next_deadline_us() == 3 * S
    button.tick(3 * S)
    assert button.next_deadline_us() is None


# -- button properties -----------------------------------------------------------------------

# Alternating raw runs starting low (the button rests high): many near the 30 ms debounce.
run_lengths = st.lists(
    st.one_of(st.integers(1, 60 * MS), st.integers(1, 4 * S)), min_size=0, max_size=40
)


def edges_from(lengths: list[int]) -> list[tuple[int, bool]]:
    t, out = 1000, []
    for i, n in enumerate(lengths):
        out.append((t, i % 2 == 1))  # False (pressed) first
        t += n
    return out


def level_at(edges: list[tuple[int, bool]], t: int) -> bool:
    level = True
    for at, lvl in edges:
        if at > t:
            break
        level = lvl
    return level


def drive_and_collect(
    lengths: list[int], ticks: list[int]
) -> tuple[list[tuple[int, bool]], list[tuple[int, ButtonEvent]], int]:
    """Drive the runs, ticking at the edges and at ``ticks``; events with when they came."""
    backend, button = make_button()
    edges = edges_from(lengths)
    end = (edges[-1][0] if edges else 0) + 5 * S
    plan = sorted([(at, 0, lvl) for at, lvl in edges] + [(t, 1, None) for t in ticks if t < end])
    got: list[tuple[int, ButtonEvent]] = []
    for at, is_tick, lvl in plan:
        if is_tick:
            got += [(at, e) for e in button.tick(at)]
        else:
            backend.drive(PIN, lvl, at)
    got += [(end, e) for e in button.tick(end)]
    return edges, got, end


@settings(max_examples=300, deadline=None)
@given(run_lengths, st.lists(st.integers(0, 60 * S), max_size=200))
def test_press_needs_a_stable_low_period_and_events_alternate(lengths, ticks):
    edges, got, _ = drive_and_collect(lengths, ticks)
    debounce = 30 * MS
    for emitted, event in got:
        assert event.at_us <= emitted
        if event.kind in ("press", "release"):
            assert emitted >= event.at_us + debounce  # reported only once it was certain
            want = event.kind == "release"  # the raw level of that kind (active low)
            # the raw level was steady for at least the debounce from the event time on
            assert all(
                level_at(edges, event.at_us + d) == want for d in (0, debounce // 2, debounce)
            )
            assert not any(event.at_us < at < event.at_us + debounce for at, _ in edges)
    kinds = "".join(e.kind[0] for _, e in got)
    assert re.fullmatch(r"(ph?r)*(ph?)?", kinds), kinds


@settings(max_examples=300, deadline=None)
@given(run_lengths)
def test_events_match_a_reference_debouncer_whatever_the_tick_rate(lengths):
    edges, sparse, _ = drive_and_collect(lengths, [])
    _, dense, _ = drive_and_collect(lengths, list(range(0, 200 * S, 7 * MS)))
    assert [e for _, e in sparse] == [e for _, e in dense]

    # Reference: a run of the raw level lasting >= debounce that differs from the debounced
    # level becomes the debounced level at its start; hold if pressed for >= hold time.
    debounce, hold = 30 * MS, 3 * S
    ends: list[int | None] = [at for at, _ in edges[1:]] + [None]
    runs = [(at, ends[i], lvl) for i, (at, lvl) in enumerate(edges)]
    expected, stable_pressed, since = [], False, 0
    for start, stop, lvl in runs:
        pressed = not lvl
        long_enough = stop is None or stop - start >= debounce
        if pressed != stable_pressed and long_enough:
            if stable_pressed and start - since >= hold:
                expected.append(ButtonEvent("hold", since + hold))
            expected.append(ButtonEvent("press" if pressed else "release", start))
            stable_pressed, since = pressed, start
    if stable_pressed:
        expected.append(ButtonEvent("hold", since + hold))
    assert [e for _, e in sparse] == expected


# -- LED -------------------------------------------------------------------------------------


def test_led_writes_only_on_change():
    clock = VirtualClock()
    backend = SimPinBackend(clock)
    led = Led(backend, 9)
    assert backend.level(9) is False and backend.history == []
    led.tick(0)
    led.on()
    for t in range(0, 50 * MS, MS):
        clock.set(t)
        led.tick(t)
    led.off()
    clock.set(60 * MS)
    led.tick(60 * MS)
    led.tick(60 * MS)
    assert backend.history == [PinWrite(9, True, 0), PinWrite(9, False, 60 * MS)]


def test_led_slow_blink_timing():
    clock = VirtualClock()
    backend = SimPinBackend(clock)
    led = Led(backend, 9)
    led.play(LED_BLINK_SLOW)
    for t in range(0, 4 * S + 1, 10 * MS):
        clock.set(t)
        led.tick(t)
    assert [(w.level, w.at_us) for w in backend.history] == [
        (True, 0),
        (False, 100 * MS),
        (True, 2 * S),
        (False, 2100 * MS),
        (True, 4 * S),
    ]
    assert led.name == "blink-slow"


def test_led_one_shot_ends_off_and_active_low_inverts():
    clock = VirtualClock()
    backend = SimPinBackend(clock)
    led = Led(backend, 9, active_high=False)
    assert backend.level(9) is True  # off
    led.play(Pattern("flash", ((True, 50),), repeat=False))
    for t in range(0, 200 * MS, 10 * MS):
        clock.set(t)
        led.tick(t)
    assert [(w.level, w.at_us) for w in backend.history] == [(False, 0), (True, 50 * MS)]
    assert led.name == "off" and not led.active


def test_led_next_change():
    backend = SimPinBackend(VirtualClock())
    led = Led(backend, 9)
    led.tick(0)
    assert led.next_change_us() is None  # off stays off
    led.play(LED_BLINK_SLOW)
    assert led.next_change_us() == 0  # tick now to start it
    led.tick(5 * MS)
    assert led.next_change_us() == 105 * MS


# -- haptic ----------------------------------------------------------------------------------


def pulses(writes: list[PinWrite]) -> list[tuple[int, int]]:
    """(start, length) of each on-period in a write history."""
    out, on_at = [], None
    for w in writes:
        if w.level:
            on_at = w.at_us
        elif on_at is not None:
            out.append((on_at, w.at_us - on_at))
            on_at = None
    return out


def test_buzzes_play_in_order_and_stay_apart():
    clock = VirtualClock()
    backend = SimPinBackend(clock)
    motor = Haptic(backend, 11)
    motor.buzz(BUZZ_START)
    motor.buzz(BUZZ_STOP)
    for t in range(0, 2 * S, MS):
        clock.set(t)
        motor.tick(t)
    assert pulses(backend.history) == [(0, 300 * MS), (500 * MS, 100 * MS), (750 * MS, 100 * MS)]
    assert motor.name == "idle" and not motor.busy


def test_haptic_rejects_patterns_that_could_buzz_forever_or_merge():
    motor = Haptic(SimPinBackend(VirtualClock()), 11)
    with pytest.raises(ValueError):
        motor.buzz(Pattern("forever", ((True, 100), (False, 100))))
    with pytest.raises(ValueError):
        motor.buzz(Pattern("no-rest", ((True, 100),), repeat=False))


def test_haptic_stop_silences_at_once():
    clock = VirtualClock()
    backend = SimPinBackend(clock)
    motor = Haptic(backend, 11)
    motor.buzz(BUZZ_START)
    motor.tick(0)
    motor.stop()
    clock.set(10 * MS)
    motor.tick(10 * MS)
    assert pulses(backend.history) == [(0, 10 * MS)]
    assert motor.next_change_us() is None


def test_haptic_next_change_follows_the_pattern():
    motor = Haptic(SimPinBackend(VirtualClock()), 11)
    assert motor.next_change_us() is None
    motor.buzz(BUZZ_STOP)
    motor.tick(0)
    assert motor.next_change_us() == 100 * MS
    motor.tick(100 * MS)
    assert motor.next_change_us() == 250 * MS
