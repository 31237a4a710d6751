"""Issue 8, point 8: the last line of defence. Whatever a command lets escape becomes one
line on stderr and exit 2 (as JSON too with --json); -vv adds the traceback for a developer."""

from __future__ import annotations

from click.testing import CliRunner

import bwv.verify_cmd
from bwv.cli import main


def _boom(*args, **kwargs):
    raise ZeroDivisionError("division by zero")


def test_an_unexpected_error_is_one_line_and_exit_2(monkeypatch, tmp_path):
    monkeypatch.setattr(bwv.verify_cmd, "run_verify", _boom)
    r = CliRunner().invoke(main, ["verify", str(tmp_path)])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        "Error: unexpected ZeroDivisionError: division by zero (a bug in bwv: please report "
        "it; -vv shows where it happened)"
    ]
    assert "Traceback" not in r.output


def test_with_json_the_error_is_json(monkeypatch, tmp_path):
    import json

    monkeypatch.setattr(bwv.verify_cmd, "run_verify", _boom)
    r = CliRunner().invoke(main, ["verify", "--json", str(tmp_path)])
    assert r.exit_code == 2
    assert "ZeroDivisionError" in json.loads(r.stdout)["error"]


def test_a_known_kind_of_error_reads_as_what_happened(monkeypatch, tmp_path):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/var/lib/bwv/outbox")

    monkeypatch.setattr(bwv.verify_cmd, "run_verify", denied)
    r = CliRunner().invoke(main, ["verify", str(tmp_path)])
    assert r.exit_code == 2
    assert r.stderr.strip() == "Error: /var/lib/bwv/outbox: Permission denied"


def test_vv_shows_the_traceback(monkeypatch, tmp_path):
    monkeypatch.setattr(bwv.verify_cmd, "run_verify", _boom)
    r = CliRunner().invoke(main, ["-vv", "verify", str(tmp_path)])
    assert r.exit_code == 2
    assert "Traceback" in r.stderr and "ZeroDivisionError" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("Error: unexpected ZeroDivisionError")
