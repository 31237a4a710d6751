"""Issue 10, point 4: a `bwv sim raid` folder tells the truth. Each recording's exhibit is
under OUT/exhibits/<id>/ and verifies with the device key the summary names; `evidence`
lists exactly what `bwv verify OUT` reads, and changing, truncating, deleting or swapping
any of those files makes it exit 1; the stand-in agency key is not on the device."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bwv.cli import main
from capture.config import from_dict
from simulator.raid import RaidPlan, run_raid
from tests.conftest import SMALL


def bwv(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def raid(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("raid") / "out"
    result = run_raid(from_dict(SMALL), out, RaidPlan(record_s=1.0))
    assert result.ok, result.problems
    return out


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_the_exhibits_are_listed_and_verify_with_the_device_key(raid):
    s = _summary(raid)
    (rec,) = s["recordings"]
    assert s["exhibits"] == [f"exhibits/{rec['id']}"]
    ex = raid / s["exhibits"][0]
    assert rec["segments"] and all(p.startswith(s["exhibits"][0] + "/") for p in rec["segments"])
    assert all((raid / p).is_file() and p.endswith(".mp4") for p in rec["segments"])
    r = bwv("verify", ex, "--device-pub", raid / s["keys"]["device_public_key"])
    assert r.exit_code == 0, r.output
    r = bwv("verify", raid)
    assert r.exit_code == 0, r.output
    assert "ALL VERIFIED" in r.output


def test_the_stand_in_agency_key_is_not_on_the_device(raid):
    s = _summary(raid)
    key = Path(s["keys"]["agency_private_key"])
    assert key.parts[0] == "agency" and (raid / key).is_file()
    assert not list((raid / "device").rglob("agency*"))


def test_evidence_is_exactly_what_verify_reads(raid):
    s = _summary(raid)
    listed = set(s["evidence"])
    assert all((raid / p).is_file() for p in listed)
    assert any(p.startswith("dock/objects/") for p in listed)
    assert set(_summary(raid)["recordings"][0]["segments"]) <= listed
    assert not any(p.endswith(("EXHIBIT.md", "report.json", "summary.json")) for p in listed)


def _change(path: Path, how: str) -> None:
    path.chmod(0o600)
    data = path.read_bytes()
    if how == "flip":
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        path.write_bytes(bytes(b))
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
def test_any_change_to_any_evidence_file_is_exit_1(raid, tmp_path, how):
    listed = _summary(raid)["evidence"]
    failures = []
    for i, name in enumerate(listed):
        copy = tmp_path / f"c{i}"
        shutil.copytree(raid, copy)
        _change(copy / name, how)
        r = bwv("verify", copy)
        if r.exit_code != 1:
            failures.append((name, r.exit_code, r.output[-300:]))
        shutil.rmtree(copy)
    assert not failures, failures


def test_swapping_two_evidence_files_is_exit_1(raid, tmp_path):
    listed = _summary(raid)["evidence"]
    pairs = {}
    for name in listed:  # two files of each kind (same folder, same extension)
        pairs.setdefault((str(Path(name).parent), Path(name).suffix), []).append(name)
    swapped = 0
    for names in pairs.values():
        if len(names) < 2:
            continue
        copy = tmp_path / f"s{swapped}"
        shutil.copytree(raid, copy)
        a, b = copy / names[0], copy / names[1]
        a.chmod(0o600), b.chmod(0o600)
        da, db = a.read_bytes(), b.read_bytes()
        a.write_bytes(db), b.write_bytes(da)
        r = bwv("verify", copy)
        assert r.exit_code == 1, (names[:2], r.output[-500:])
        shutil.rmtree(copy)
        swapped += 1
    assert swapped >= 3
