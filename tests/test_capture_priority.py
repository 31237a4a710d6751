"""Capture goes first on a busy CPU: the shipper's thread renices itself below the threads
that capture (systemd/bwv.service sets the process's own niceness: see
tests/test_systemd_units.py)."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.pipeline import UNIT_NICE
from dock.shipper import ShipperConfig, ShipperThread, StepReport

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


@dataclass
class OneStepShipper:
    """Stands in for a Shipper: notes the niceness of the thread that steps it."""

    config: ShipperConfig = field(default_factory=lambda: ShipperConfig(idle_poll_s=3600))
    stepped: threading.Event = field(default_factory=threading.Event)
    nice_seen: list[int] = field(default_factory=list)

    def step(self) -> StepReport:
        self.nice_seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.stepped.set()
        return StepReport("idle")


def test_the_shipper_thread_runs_below_capture_and_leaves_capture_alone():
    capture_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    fake = OneStepShipper()
    t = ShipperThread(fake).start()  # type: ignore[arg-type]
    try:
        # waits for the thread's first step (an event, not a timing): bounded, never slept on
        assert fake.stepped.wait(30), "the shipper thread never stepped"
    finally:
        t.stop()
    assert fake.nice_seen[0] > capture_nice or fake.nice_seen[0] == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == capture_nice


def test_the_bench_runs_the_simulated_device_at_the_units_niceness():
    unit = Path(__file__).resolve().parent.parent / "systemd" / "bwv.service"
    nice = [ln.split("=", 1)[1] for ln in unit.read_text().splitlines() if ln.startswith("Nice=")]
    assert nice == [str(UNIT_NICE)]
