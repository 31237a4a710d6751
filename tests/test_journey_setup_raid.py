"""The README's raid command, run again into the same --out: the earlier raid is replaced
(saying so) and the new one checks out; a folder holding anything else is refused with one
line and exit 2, and left as it was."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bwv.cli import main

RAID = ["--pre-record", "1", "--record", "2", "--size", "320x240", "--fps", "15"]


def _raid(out):
    return CliRunner().invoke(main, ["sim", "raid", "--out", str(out), *RAID])


def test_a_second_raid_into_the_same_folder_replaces_the_first_and_verifies(tmp_path):
    out = tmp_path / "raid"
    first = _raid(out)
    assert first.exit_code == 0, first.output
    first_id = json.loads((out / "summary.json").read_text())["recordings"][0]["id"]

    second = _raid(out)
    assert second.exit_code == 0, second.output
    assert "PROBLEM" not in second.output
    assert f"replacing the earlier raid in {out}" in second.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["verified"]
    assert [r["id"] for r in summary["recordings"]] != [first_id]
    assert len(list((out / "exhibits").glob("*/*.mp4"))) == len(
        summary["recordings"][0]["segments"]
    )  # only the second raid's exhibit

    check = CliRunner().invoke(main, ["verify", str(out)])
    assert check.exit_code == 0, check.output


def test_a_folder_holding_other_files_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    r = _raid(out)
    assert r.exit_code == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not empty" in lines[0] and "notes.txt" in lines[0]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_an_earlier_raid_with_something_added_is_refused(tmp_path):
    out = tmp_path / "raid"
    assert _raid(out).exit_code == 0
    (out / "export").mkdir()  # e.g. a `bwv dock export --out raid/export`
    r = _raid(out)
    assert r.exit_code == 2 and "export" in r.stderr
    assert (out / "summary.json").is_file() and (out / "export").is_dir()


def test_an_empty_folder_is_used_without_a_word(tmp_path):
    from simulator.raid import prepare_out

    assert prepare_out(tmp_path) is False
    assert prepare_out(tmp_path / "new") is False
