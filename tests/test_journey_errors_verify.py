"""Issue 8, points 10 and 12: what an investigator reads from ``bwv verify``.

- A folder with nothing to check (empty, documents, a lone exported MP4) is "nothing
  checkable here", exit 2, even with --device-pub; never NOT VERIFIED (exit 1).
- ``--device-id`` of another device: one line for the one cause, no false cut_short.
- The wrong --device-pub: one line, not one per record.
- Findings for a ``bwv sim raid`` folder name the files that are there (the dock's objects).
- The interactive simulator's state folder holds its keys: no --device-pub needed.
- ``--json`` is JSON on every path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from bwv.cli import main
from capture.config import from_dict
from simulator.raid import RaidPlan, run_raid, run_record
from tests.conftest import SMALL


def bwv(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def raid(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("raid")
    result = run_raid(from_dict(SMALL), out, RaidPlan(record_s=1.0))
    assert result.ok, result.problems
    return out


def _findings(output: str) -> list[str]:
    return [
        line.strip()
        for line in output.splitlines()
        if line.startswith("  ")
        and not line.startswith("  segment")
        and not line.startswith("    ")
    ]


def test_a_raid_folder_verifies_as_it_is(raid):
    r = bwv("verify", raid)
    assert r.exit_code == 0, r.output
    assert "VERIFIED: authentic and complete" in r.output


@pytest.mark.parametrize("what", ["empty", "docs", "mp4"])
def test_nothing_checkable_is_exit_2_not_not_verified(raid, tmp_path, what):
    if what == "empty":
        target = tmp_path / "empty"
        target.mkdir()
    elif what == "docs":
        target = tmp_path / "docs"
        target.mkdir()
        (target / "README.md").write_text("# notes\n")
        (target / "report.pdf").write_bytes(b"%PDF-1.4\n")
    else:
        target = next((raid / "exhibits").glob("*/*.mp4"))
    pub = raid / json.loads((raid / "summary.json").read_text())["keys"]["device_public_key"]
    for args in ([target], ["--device-pub", pub, target]):
        r = bwv("verify", *args)
        assert r.exit_code == 2, r.output
        assert "nothing checkable here" in r.output
        assert "NOT VERIFIED" not in r.output and "--device-pub is needed" not in r.output
    r = bwv("verify", "--json", target)
    assert r.exit_code == 2
    assert "nothing checkable here" in json.loads(r.stdout)["error"]


def test_another_device_id_is_one_line_for_one_cause(raid):
    r = bwv("verify", "--device-id", "other", raid)
    assert r.exit_code == 1
    found = _findings(r.output)
    assert len(found) == 1, r.output
    assert found[0].startswith("substituted:") and "'other'" in found[0]
    assert "sim-test-01" in found[0]
    assert "cut_short" not in r.output
    data = json.loads(bwv("verify", "--json", "--device-id", "other", raid).stdout)
    assert [f["kind"] for f in data["findings"]] == ["substituted"] and data["ok"] is False


def test_the_wrong_device_key_is_one_line(raid, tmp_path):
    other = tmp_path / "other.pub"
    other.write_text(bytes(SigningKey.generate().verify_key).hex() + "\n")
    r = bwv("verify", "--device-pub", other, raid)
    assert r.exit_code == 1
    found = _findings(r.output)
    assert len(found) == 1 and "nothing here is signed by the key given" in found[0], r.output
    assert "cut_short" not in r.output


def test_findings_in_a_raid_folder_name_the_files_that_are_there(raid, tmp_path):
    import shutil

    copy = tmp_path / "raid"
    shutil.copytree(raid, copy)
    blob = max(
        (copy / "dock" / "objects" / "sim-test-01").glob("*.blob"), key=lambda p: p.stat().st_size
    )
    blob.chmod(0o600)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    r = bwv("verify", copy)
    assert r.exit_code == 1
    named = {line.rsplit("[", 1)[1].rstrip("]") for line in _findings(r.output) if "[" in line}
    assert named, r.output
    for name in named:
        assert (copy / name).is_file(), f"{name} is not a file of the raid folder"
    assert f"dock/objects/sim-test-01/{blob.name}" in named
    rep = json.loads(bwv("verify", "--json", copy).stdout)
    files = {f["file"] for f in rep["findings"] if f["file"]}
    assert files and all((copy / f).is_file() for f in files)


def test_the_simulators_state_folder_verifies_without_device_pub(tmp_path):
    state = tmp_path / "sim-state"
    run_record(from_dict(SMALL), state, 1.0, lambda e: None)
    r = bwv("verify", state)
    assert "--device-pub" not in r.output
    assert r.exit_code in (0, 1), r.output  # it checked (the recording ended at shutdown)
    assert "device sim-test-01" in r.output
    assert "authentic" in r.output and "(footage not decrypted" not in r.output
