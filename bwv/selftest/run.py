"""Every selftest check, in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bwv.selftest.dock_check import check_dock
from bwv.selftest.hardware import hardware_checks
from bwv.selftest.model import Check, SelftestOptions
from bwv.selftest.setup_checks import check_clock, check_config, check_keys, check_storage
from bwv.selftest.time_sync import check_time_sync
from bwv.status_cmd import DaemonStatus, read_daemon_status
from capture.config import Config


def run_selftest(
    cfg: Config,
    hardware_factory: Callable[..., Any] | None = None,
    *,
    config_source: str = "",
    clock: Any = None,
    wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    options: SelftestOptions | None = None,
    daemon: DaemonStatus | None = None,
) -> list[Check]:
    """Every check, in order. ``hardware_factory(cfg, wall, on_fault, on_warning, clock=)``
    builds the :class:`capture.hardware.Hardware` (default:
    :func:`capture.hardware.build_hardware`, the Pi's); ``clock`` is the capture clock handed
    to it (default: :func:`capture.camera.capture_clock`). The clock check reads the clock
    the hardware came with, before and after the camera and microphone ran."""
    opts = options or SelftestOptions()
    if hardware_factory is None:
        from capture.hardware import build_hardware

        hardware_factory = build_hardware
    if clock is None:
        from capture.camera import capture_clock

        clock = capture_clock()
    checks = [check_config(cfg, config_source or "defaults"), *check_keys(cfg), check_storage(cfg)]
    daemon = daemon if daemon is not None else read_daemon_status(cfg)
    readings = None
    if daemon.running:
        why = (
            f"not tested: the bwv daemon is running ({daemon.detail}) and holds the camera, "
            "microphone and pins; stop it first (sudo systemctl stop bwv)"
        )
        hw_checks = [Check(n, "FAIL", why) for n in ("camera", "microphone", "controls")]
    else:
        hw_checks, readings = hardware_checks(cfg, hardware_factory, clock, opts)
    if readings is None:  # no hardware ran: watch the capture clock over a short wait
        start = clock.now_us()
        threading.Event().wait(0.02)
        readings = (start, clock.now_us())
    checks.append(check_clock(*readings, wall_us()))
    checks.append(check_time_sync(cfg))
    checks += hw_checks
    checks.append(check_dock(cfg, opts))
    return checks
