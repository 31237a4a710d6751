"""The systemd units a technician installs: valid, and hardened to a low exposure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"
MAX_EXPOSURE = 2.5

if shutil.which("systemd-analyze") is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must install systemd (systemd-analyze) to check the units")
    pytest.skip("systemd-analyze not installed", allow_module_level=True)


def _installed_copy(unit: str, tmp_path: Path) -> Path:
    """The unit as install.sh writes it, with ExecStart pointing at this checkout's bwv."""
    bwv = Path(sys.executable).parent / "bwv"
    text = (UNITS / unit).read_text().replace("/opt/bwv/venv/bin/bwv", str(bwv))
    out = tmp_path / unit
    out.write_text(text)
    return out


@pytest.mark.parametrize("unit", ["bwv.service", "bwv-dock.service"])
def test_unit_passes_systemd_analyze_verify(unit, tmp_path):
    r = subprocess.run(
        ["systemd-analyze", "verify", str(_installed_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


@pytest.mark.parametrize("unit", ["bwv.service", "bwv-dock.service"])
def test_unit_exposure_is_at_most_2_5(unit, tmp_path):
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(_installed_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE


def test_capture_unit_is_notify_with_watchdog_and_dedicated_user():
    text = (UNITS / "bwv.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=bwv",
        "StateDirectory=bwv",
        "DevicePolicy=closed",
    ):
        assert line in text


def _settings(unit: str) -> dict[str, str]:
    out = {}
    for line in (UNITS / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_capture_unit_gives_capture_the_cpu_and_disk_first_without_realtime():
    s = _settings("bwv.service")
    assert int(s["Nice"]) <= -5  # ahead of ordinary processes (nice 0) on a busy core
    assert int(s["CPUWeight"]) > 100 and int(s["IOWeight"]) > 100  # 100 is the default
    assert s["IOSchedulingClass"] == "best-effort" and s["IOSchedulingPriority"] == "0"
    # never a real-time policy: a runaway thread would starve the watchdog and the system
    assert s.get("CPUSchedulingPolicy", "other") in ("other", "batch")
    assert s["RestrictRealtime"] == "yes"
