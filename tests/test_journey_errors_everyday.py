"""Issue 8, point 16 (part): ``bwv --version`` and ``bwv config show``."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict
from importlib.metadata import version

from click.testing import CliRunner

from bwv.cli import main
from capture.config import Config, load


def bwv(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_version_comes_from_the_package_metadata():
    for flag in ("--version", "-V"):
        r = bwv(flag)
        assert r.exit_code == 0
        assert r.output == f"bwv {version('bwv')}\n"


def test_config_help_names_show():
    r = bwv("config", "--help")
    assert "show" in r.output and "check" in r.output


def test_config_show_fills_in_the_defaults_as_toml_that_reads_back(tmp_path):
    cfg = tmp_path / "bwv.toml"
    cfg.write_text(
        'device_id = "cam-7"\n[video]\nfps = 25\ngop = 25\n[dock]\nurl = "https://dock.local:8443"\n'
    )
    r = bwv("config", "show", "--config", cfg)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"# bwv {version('bwv')}: the effective configuration: {cfg}")
    shown = tomllib.loads(r.output)
    want = asdict(load(cfg))
    assert shown == want  # every key, defaults filled in
    assert shown["video"]["fps"] == 25 and shown["pre_record"]["seconds"] == 30.0
    again = tmp_path / "again.toml"
    again.write_text(r.output)
    assert load(again) == load(cfg)  # usable as a configuration as it is


def test_config_show_json(tmp_path):
    r = bwv("config", "show", "--json", "--config", tmp_path / "missing.toml")
    assert r.exit_code == 2 and "cannot read" in json.loads(r.stdout)["error"]
    cfg = tmp_path / "bwv.toml"
    cfg.write_text('device_id = "cam-7"\n')
    r = bwv("config", "show", "--json", "--config", cfg)
    assert r.exit_code == 0
    assert json.loads(r.stdout) == asdict(load(cfg))


def test_config_show_without_a_file_shows_the_defaults(monkeypatch, tmp_path):
    from bwv import config_show

    monkeypatch.setattr(config_show, "DEVICE_CONFIG", tmp_path / "none.toml")
    r = bwv("config", "show")
    assert r.exit_code == 0
    assert "built-in defaults" in r.output.splitlines()[0]
    assert tomllib.loads(r.output) == asdict(Config())
