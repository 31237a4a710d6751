"""The command line as a newcomer meets it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bwv.cli import main


@pytest.mark.parametrize("args", [[], ["sim"], ["sim", "raid"], ["config"], ["config", "check"]])
def test_every_command_explains_itself(args):
    r = CliRunner().invoke(main, [*args, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output
    assert len(r.output.splitlines()) > 4


def test_sim_raid_writes_summary_and_exits_zero(tmp_path):
    out = tmp_path / "raid"
    r = CliRunner().invoke(
        main,
        [
            "sim",
            "raid",
            "--out",
            str(out),
            "--pre-record",
            "1",
            "--record",
            "2",
            "--size",
            "320x240",
            "--fps",
            "15",
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    rec = summary["recordings"][0]
    assert all((out / p).is_file() for p in rec["segments"])
    assert rec["first_frame"] <= rec["press_frame"] - 15


def test_sim_raid_rejects_a_bad_size_naming_it(tmp_path):
    r = CliRunner().invoke(main, ["sim", "raid", "--out", str(tmp_path), "--size", "1000x7"])
    assert r.exit_code != 0
    assert "video.width" in r.output


def test_config_check_prints_effective_config(tmp_path):
    f = tmp_path / "bwv.toml"
    f.write_text('device_id = "bwv-0042"\n[video]\nfps = 25\ngop = 25\n')
    r = CliRunner().invoke(main, ["config", "check", str(f)])
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)
    assert cfg["video"]["fps"] == 25 and cfg["video"]["width"] == 1280


def test_interactive_sim_without_a_terminal_refuses(tmp_path):
    # piped keys are no terminal: tests/test_journey_setup_interactive.py drives it in a pty
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bwv.cli",
            "sim",
            "--state",
            str(tmp_path),
            "--config",
            str(_small_config(tmp_path)),
        ],
        input=" q",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "bwv sim raid" in r.stderr, r.stderr


def _small_config(tmp_path):
    f = tmp_path / "small.toml"
    f.write_text(
        'device_id = "sim-i"\n[video]\nwidth = 320\nheight = 240\nbitrate = 300000\n'
        "[pre_record]\nseconds = 1.0\nmax_mb = 8\n"
    )
    return f
