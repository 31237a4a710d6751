"""The hardware checks together: set the hardware up (naming a missing GPIO library on a
line of its own), run the camera, the microphone and the controls, and read the capture clock
around them. The button, LEDs and haptic motor are checked here too."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bwv.selftest.model import Check, SelftestOptions, describe_error
from bwv.selftest.sources import check_camera, check_microphone
from capture.config import Config

# -- a missing GPIO library ------------------------------------------------------------------------

GPIO_PACKAGES = (
    "the camera needs RPi.GPIO, which the python3-rpi-lgpio package provides: install.sh "
    "installs it from apt (sudo ./install.sh), or `pip install rpi-lgpio` in the venv "
    "(the `pi` extra); off a Raspberry Pi there are no pins to test"
)


class _NoPins:
    """Stands in for the pins when their library is missing (never used: see the check)."""


NO_PINS: Any = _NoPins()


def gpio_library_problem(exc: BaseException) -> str | None:
    """What to tell the technician when ``exc`` says the GPIO library is missing or cannot
    run here (RPi.GPIO refuses to import off a Pi); None for anything else."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in (
        "RPi",
        "lgpio",
    ):
        return f"RPi.GPIO cannot be imported ({exc}): {GPIO_PACKAGES}"
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    from_gpio = any(Path(f.filename).parts[-2:] == ("gpio", "rpi.py") for f in frames)
    if from_gpio and isinstance(exc, ImportError | RuntimeError):
        return f"RPi.GPIO cannot be used here ({describe_error(exc)}): {GPIO_PACKAGES}"
    return None


# -- button, LEDs, haptic --------------------------------------------------------------------------


def check_controls(hw: Any, cfg: Config, opts: SelftestOptions) -> Check:
    pins, p = hw.pins, cfg.pins
    outputs = (("red LED", p.red_led), ("green LED", p.green_led), ("haptic", p.haptic))
    pause = threading.Event()  # never set: its wait is the blink's length, not a sync
    step = "set up the pins"
    try:
        for name, pin in outputs:
            step = f"set up the {name} (BCM {pin})"
            pins.setup_output(pin, initial=False)
        step = f"set up the button (BCM {p.button})"
        pins.setup_input(p.button, pull_up=True)
        step = f"set up dock detect (BCM {p.dock_detect})"
        pins.setup_input(p.dock_detect, pull_up=True)
        step = "read the button"
        pressed = not pins.read(p.button)  # active low: the button pulls it to ground
        docked = not pins.read(p.dock_detect)  # the dock pulls it low
        for name, pin in outputs:
            step = f"blink the {name} (BCM {pin})"
            pins.write(pin, True)
            pause.wait(opts.blink_s)
            pins.write(pin, False)
            pause.wait(opts.blink_s / 2)
    except Exception as exc:  # noqa: BLE001
        return Check("controls", "FAIL", f"could not {step}: {describe_error(exc)}")
    finally:
        with contextlib.suppress(Exception):
            pins.close()
    blinked = ", ".join(f"{name} (BCM {pin})" for name, pin in outputs)
    return Check(
        "controls",
        "PASS",
        f"blinked {blinked} once each; button (BCM {p.button}) "
        f"{'PRESSED' if pressed else 'released'}; dock detect (BCM {p.dock_detect}) "
        f"{'docked' if docked else 'not docked'}",
        {"button_pressed": pressed, "docked": docked},
    )


# -- all the hardware ------------------------------------------------------------------------------


def hardware_checks(
    cfg: Config, hardware_factory: Callable[..., Any], clock: Any, opts: SelftestOptions
) -> tuple[list[Check], tuple[int, int] | None]:
    """Camera, microphone and controls; and two readings of the hardware's capture clock
    taken around them (None if the hardware could not be set up)."""
    from capture.clock import OffsetWallClock

    wall = OffsetWallClock(time.time_ns() // 1000 - clock.now_us())
    faults: list[str] = []
    checks: list[Check] = []
    try:
        hw = hardware_factory(cfg, wall, faults.append, None, clock=clock)
    except Exception as exc:  # noqa: BLE001 - no RPi.GPIO off a Pi, pins busy, ...
        missing = gpio_library_problem(exc)
        why = f"cannot set up the hardware: {describe_error(exc)}"
        hw = None
        if missing is not None:  # the camera and microphone are still worth testing
            checks.append(Check("gpio library", "FAIL", missing))
            try:
                hw = hardware_factory(cfg, wall, faults.append, None, clock=clock, pins=NO_PINS)
            except Exception as again:  # noqa: BLE001
                why = f"cannot set up the hardware: {describe_error(again)}"
        if hw is None:
            checks += [Check(n, "FAIL", why) for n in ("camera", "microphone", "controls")]
            return checks, None
    start = hw.clock.now_us()
    checks += [check_camera(hw, opts), check_microphone(hw, cfg, opts)]
    if hw.pins is NO_PINS:
        checks.append(
            Check("controls", "FAIL", "not tested: no GPIO library (see the gpio library line)")
        )
    else:
        checks.append(check_controls(hw, cfg, opts))
    return checks, (start, hw.clock.now_us())
