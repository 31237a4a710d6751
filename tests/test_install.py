"""install.sh as a technician runs it: shellcheck clean, and a dry run that says what it
would do and changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = [ROOT / "install.sh", ROOT / "scripts" / "bootstrap.sh", ROOT / ".ci" / "run",
           ROOT / "scripts" / "alsa-file-pcm.sh"]


def test_shell_scripts_are_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install shellcheck")
        pytest.skip("shellcheck not installed")
    r = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    if shutil.which("dpkg-query") is None:
        pytest.skip("install.sh targets Debian / Raspberry Pi OS")
    r = subprocess.run([str(ROOT / "install.sh"), "--dry-run", "--dock"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for step in ("python3 -m venv --system-site-packages /opt/bwv/venv",
                 "/etc/systemd/system/bwv.service", "/etc/systemd/system/bwv-dock.service",
                 "systemctl enable bwv.service bwv-dock.service"):
        assert step in out
    if not Path("/etc/bwv/bwv.toml").exists():
        assert "bwv.example.toml /etc/bwv/bwv.toml" in out
    assert all(line.startswith(("==> ", "would run: ")) for line in out.splitlines())
    assert not any(tmp_path.iterdir())


def test_unknown_option_is_refused_with_usage():
    r = subprocess.run([str(ROOT / "install.sh"), "--frobnicate"], capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "unknown option: --frobnicate" in r.stderr and "--dry-run" in r.stderr


def test_example_config_is_valid():
    from capture.config import load

    cfg = load(ROOT / "systemd" / "bwv.example.toml")
    assert cfg.device_id == "bwv-0000"
