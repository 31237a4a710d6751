"""The RPi.GPIO pin backend over the fake RPi.GPIO: what the contract tests do not say."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from capture.clock import VirtualClock
from gpio.devices import Button, ButtonEvent
from gpio.rpi import RpiGpioBackend
from tests.fakes import install
from tests.fakes.rpi_gpio import BCM, BOTH, FakeRpiGpioEnv, make_fake_rpi_gpio


@pytest.fixture(params=["RPi.GPIO", "rpi-lgpio"])
def gpio_env(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeRpiGpioEnv]:
    env = make_fake_rpi_gpio(request.param)
    install(monkeypatch, env.modules)
    yield env
    env.board.stop()


def test_bcm_numbering_pulls_and_edge_detection_on_both_edges(gpio_env: FakeRpiGpioEnv) -> None:
    backend = RpiGpioBackend(VirtualClock())
    board = gpio_env.board
    assert board.mode == BCM and board.warnings is False
    backend.setup_input(17, pull_up=True)
    backend.setup_input(24, pull_up=False)
    backend.setup_output(27, initial=True)
    assert board.level(17) == 1 and board.level(24) == 0 and board.level(27) == 1
    backend.add_edge_callback(17, lambda *a: None)
    backend.add_edge_callback(17, lambda *a: None)  # a second listener: one event detect
    assert board.channels[17].edge == BOTH and len(board.channels[17].callbacks) == 1
    backend.write(27, False)
    assert board.writes == [(27, 0)]
    with pytest.raises(ValueError, match="already set up"):
        backend.setup_output(17, False)
    with pytest.raises(ValueError, match="not an output"):
        backend.write(17, True)
    backend.close()
    assert sorted(board.cleaned) == [17, 24, 27]


def test_edges_are_stamped_from_the_clock_on_the_libraries_thread(
    gpio_env: FakeRpiGpioEnv,
) -> None:
    clock = VirtualClock()
    backend = RpiGpioBackend(clock)
    backend.setup_input(17, pull_up=True)
    seen: list[tuple[int, bool, int, int]] = []
    backend.add_edge_callback(
        17, lambda pin, level, at: seen.append((pin, level, at, threading.get_ident()))
    )
    clock.set(2_000_000)
    gpio_env.board.drive(17, 0)
    clock.set(2_400_000)
    gpio_env.board.drive(17, 1)
    assert [(p, lv, at) for p, lv, at, _ in seen] == [(17, False, 2_000_000), (17, True, 2_400_000)]
    assert {t for *_, t in seen} == gpio_env.board.callback_thread_ids
    assert threading.get_ident() not in gpio_env.board.callback_thread_ids
    backend.close()


def test_a_glitch_gone_before_the_callback_runs_is_dropped(gpio_env: FakeRpiGpioEnv) -> None:
    clock = VirtualClock()
    backend = RpiGpioBackend(clock)
    button = Button(backend, 17, debounce_s=0.030)
    clock.set(1_000_000)
    gpio_env.board.pulse(17, 0)  # low and back high before RPi.GPIO's thread looked
    assert backend.glitches == 2
    assert button.tick(2_000_000) == []
    clock.set(3_000_000)
    gpio_env.board.drive(17, 0)
    assert button.tick(3_100_000) == [ButtonEvent("press", 3_000_000)]
    backend.close()


def test_an_exception_in_a_listener_stays_out_of_rpi_gpio(gpio_env: FakeRpiGpioEnv) -> None:
    backend = RpiGpioBackend(VirtualClock())
    backend.setup_input(17, pull_up=True)

    def broken(pin: int, level: bool, at: int) -> None:
        raise RuntimeError("listener bug")

    backend.add_edge_callback(17, broken)
    gpio_env.board.drive(17, 0)
    assert backend.callback_errors == 1 and gpio_env.board.callback_errors == []
    backend.close()


def test_no_edges_after_close(gpio_env: FakeRpiGpioEnv) -> None:
    backend = RpiGpioBackend(VirtualClock())
    backend.setup_input(17, pull_up=True)
    seen: list[int] = []
    backend.add_edge_callback(17, lambda pin, level, at: seen.append(at))
    callback = gpio_env.board.channels[17].callbacks[0]
    backend.close()
    callback(17)  # an edge RPi.GPIO had already queued when we closed
    assert seen == [] and backend.callback_errors == 0
    assert 17 not in gpio_env.board.channels  # cleaned up: back to an input, no detection
    backend.close()  # idempotent
