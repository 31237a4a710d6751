"""install.sh as a technician runs it: shellcheck clean, and a dry run that says what it
would do and changes nothing; a dock install installs the dock alone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = [
    ROOT / "install.sh",
    ROOT / "scripts" / "bootstrap.sh",
    ROOT / ".ci" / "run",
    ROOT / "scripts" / "alsa-file-pcm.sh",
    ROOT / "scripts" / "swtpm-temp.sh",
    ROOT / "simulator" / "swtpm-temp.sh",
]


def test_shell_scripts_are_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install shellcheck")
        pytest.skip("shellcheck not installed")
    r = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def _dry_run(tmp_path, *args: str) -> str:
    if shutil.which("dpkg-query") is None:
        pytest.skip("install.sh targets Debian / Raspberry Pi OS")
    r = subprocess.run(
        [str(ROOT / "install.sh"), "--dry-run", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert all(line.startswith(("==> ", "would run: ")) for line in r.stdout.splitlines())
    assert not any(tmp_path.iterdir())
    return r.stdout


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    out = _dry_run(tmp_path)
    for step in (
        "==> apt packages: python3-venv python3-picamera2 python3-pyaudio",
        "python3 -m venv --system-site-packages /opt/bwv/venv",
        "/etc/systemd/system/bwv.service",
        "systemctl enable bwv.service",
    ):
        assert step in out
    if not Path("/etc/bwv/bwv.toml").exists():
        assert "bwv.example.toml /etc/bwv/bwv.toml" in out
    assert "bwv-dock" not in out


def test_dock_install_is_the_dock_alone_from_plain_debian_packages(tmp_path):
    out = _dry_run(tmp_path, "--dock")
    apt = [ln for ln in out.splitlines() if ln.startswith("==> apt packages:")]
    assert apt == ["==> apt packages: python3-venv"]  # in plain Debian 12's main
    for step in (
        "/etc/systemd/system/bwv-dock.service",
        "systemctl enable bwv-dock.service",
        "-m pip install --quiet --upgrade",
    ):
        assert step in out
    for camera_only in (
        "picamera2",
        "pyaudio",
        "lgpio",
        "bwv.service",
        "/etc/bwv",
        "/var/lib/bwv ",
        "usermod",
        "--system-site-packages",
    ):
        assert camera_only not in out, camera_only


def test_unknown_option_is_refused_with_usage():
    r = subprocess.run([str(ROOT / "install.sh"), "--frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown option: --frobnicate" in r.stderr and "--dry-run" in r.stderr


def test_example_config_is_valid():
    from capture.config import load

    cfg = load(ROOT / "systemd" / "bwv.example.toml")
    assert cfg.device_id == "bwv-0000"
