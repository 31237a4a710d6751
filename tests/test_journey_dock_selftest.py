"""The technician's self-test (issue 8, point 15): a camera revoked at the dock does not pass,
and a missing GPIO library is blamed on its own line, not on the camera and the microphone.
A real dock on loopback; the hardware libraries are the fakes of tests/fakes."""

from __future__ import annotations

import importlib.abc
import sys
import time

import pytest

from bwv.selftest import run_selftest
from capture.config import load
from capture.hardware import build_hardware
from dock.testing import DockHarness
from tests.fakes import install
from tests.fakes.picamera2 import make_fake_picamera2
from tests.fakes.pyaudio import make_fake_pyaudio
from tests.test_selftest import NOT_RUNNING, SHORT, by_name, enrol, factory, invoke, make_camera


@pytest.fixture
def harness(tmp_path_factory):
    h = DockHarness(tmp_path_factory.mktemp("dock"))
    yield h
    h.close()


def test_a_revoked_camera_fails_the_dock_check(tmp_path, harness):
    cfg_path = make_camera(tmp_path, harness.url, harness.public_key)
    enrol(cfg_path, harness)
    cfg = load(cfg_path)
    dock = by_name(run_selftest(cfg, factory(), options=SHORT, daemon=NOT_RUNNING))["dock"]
    assert dock.status == "PASS" and "not revoked" in dock.detail, dock

    harness.dock.store.revoke(cfg.device_id, "reported lost", "technician", time.time_ns() // 1000)
    r = invoke(cfg_path, factory(), SHORT)
    assert r.exit_code == 1, r.output
    (line,) = [
        x
        for x in r.output.splitlines()
        if x.split()[1:3] not in (["dock", "key"],) and x.split()[1:2] == ["dock"]
    ]
    assert line.startswith("FAIL") and "camera revoked at the dock" in line, line
    assert "NOT READY" in r.output.splitlines()[-1]


def test_a_camera_unknown_to_the_dock_fails(tmp_path, harness):
    cfg = load(make_camera(tmp_path, harness.url, harness.public_key))
    dock = by_name(run_selftest(cfg, factory(), options=SHORT, daemon=NOT_RUNNING))["dock"]
    assert dock.status == "FAIL" and "not enrolled there" in dock.detail, dock


class _NoRpi(importlib.abc.MetaPathFinder):
    """``import RPi`` fails as it does where the library is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "RPi" or name.startswith("RPi."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def test_only_the_gpio_library_missing_blames_it_alone(tmp_path, monkeypatch):
    cam = make_fake_picamera2()
    mic = make_fake_pyaudio()
    install(monkeypatch, {**cam.modules, **mic.modules})
    for name in [m for m in sys.modules if m == "RPi" or m.startswith("RPi.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoRpi(), *sys.meta_path])

    cfg = load(make_camera(tmp_path))
    checks = run_selftest(cfg, build_hardware, options=SHORT, daemon=NOT_RUNNING)
    named = by_name(checks)
    lib = named["gpio library"]
    assert lib.status == "FAIL"
    assert "No module named 'RPi'" in lib.detail
    assert "python3-rpi-lgpio" in lib.detail and "install.sh" in lib.detail
    # the camera and the microphone were tried for real, and are not blamed on RPi
    assert cam.cameras, "the camera was not started"
    assert mic.streams, "the microphone was not started"
    for name in ("camera", "microphone"):
        assert "RPi" not in named[name].detail and "cannot set up" not in named[name].detail
    assert named["controls"].status == "FAIL" and "gpio library" in named["controls"].detail
    # the library is named on one line only
    assert sum("RPi" in c.detail for c in checks) == 1
