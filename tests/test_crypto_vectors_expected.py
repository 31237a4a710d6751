"""The verifier against hand-written verdicts (tests/vectors/recording/EXPECTED.md and
expected_verdicts.json), not against its own earlier output: the recording vector as
stored, changes made to a copy of its outbox, and other outboxes of the same recording (a
substitute agency key; issue 11's time vectors, through every entry point: the library, its
`python -m crypto.verify` and `bwv verify`; made again byte for byte by their script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from nacl.public import PrivateKey

from bwv.cli import main as bwv
from crypto.identity import DeviceIdentity, load_dock_public_key
from crypto.verify import Report, read_outbox, verify, verify_outbox
from crypto.verify import main as verify_main

REC = Path(__file__).parent / "vectors" / "recording"
EXPECTED = json.loads((REC / "expected_verdicts.json").read_text())
TIME_VECTORS = [v for v in EXPECTED["vectors"] if "time" in v]


def _keys() -> tuple[DeviceIdentity, PrivateKey]:
    keys = json.loads((REC / "keys.json").read_text())
    ident = DeviceIdentity.from_seed(keys["device_id"], bytes.fromhex(keys["device_seed_hex"]))
    return ident, PrivateKey(bytes.fromhex(keys["agency_secret_hex"]))


def _changed(files: dict[str, bytes], changes: list[dict[str, Any]]) -> dict[str, bytes]:
    files = dict(files)
    for ch in changes:
        if "outbox" in ch:  # another outbox of the same recording instead
            files = read_outbox(REC / ch["outbox"])
        elif "delete" in ch:
            del files[ch["delete"]]
        elif "swap" in ch:
            a, b = ch["swap"]
            files[a], files[b] = files[b], files[a]
        elif "flip" in ch:
            data = bytearray(files[ch["flip"]])
            data[ch["offset"]] ^= 1
            files[ch["flip"]] = bytes(data)
        else:
            raise AssertionError(f"unknown change {ch}")
    return files


def _verdicts(rep: Report) -> dict[str, Any]:
    """The parts of the report the hand-written verdicts speak of."""
    (recording,) = rep.recordings
    return {
        "ok": rep.ok,
        "finding_kinds": sorted(f.kind for f in rep.findings),
        "recording": {
            "status": recording.status,
            "end_reason": recording.end_reason,
            "segments": recording.segments,
        },
        "segments": [
            {
                "index": s.segment_index,
                "status": s.status,
                "decrypted": s.decrypted,
                "chunks": [[c.kind, c.status] for c in s.chunks],
            }
            for s in rep.segments
        ],
    }


def _dock(vector: dict[str, Any]) -> bytes | None:
    return bytes(load_dock_public_key(REC / vector["dock_pub"])) if "dock_pub" in vector else None


def _time(rep: dict[str, Any]) -> dict[str, Any]:
    """The time parts of a JSON report (the verifier's ``to_json``)."""
    (recording,) = rep["recordings"]
    return {
        "findings": [
            [f["kind"], f["seq"], f["segment_index"]]
            for f in rep["findings"]
            if f["kind"] == "time_inconsistent"
        ],
        "time_syncs": rep["time_syncs"],
        "recorded_after_us": recording["recorded_after_us"],
        "recorded_before_us": recording["recorded_before_us"],
    }


@pytest.mark.parametrize("vector", EXPECTED["vectors"], ids=lambda v: v["name"])
def test_report_matches_the_hand_written_verdicts(vector: dict[str, Any]) -> None:
    ident, agency = _keys()
    files = _changed(read_outbox(REC / "outbox"), vector["change"])
    rep = verify(files, ident.public_key, agency, dock_public_key=_dock(vector))
    assert all(r.recording_id == EXPECTED["recording_id"] for r in rep.recordings)
    want = {k: vector[k] for k in ("ok", "finding_kinds", "recording", "segments")}
    assert _verdicts(rep) == want
    if "time" in vector:
        assert _time(rep.to_json()) == vector["time"]


@pytest.mark.parametrize("vector", TIME_VECTORS, ids=lambda v: v["name"])
def test_every_entry_point_gives_a_time_vector_its_verdict(vector, capsys) -> None:
    """The library on the folder, `python -m crypto.verify` (without the dock key a time sync
    is `unchecked`, its bound still holds; with it, the same as the library) and `bwv verify`
    (with the dock key)."""
    ident, _ = _keys()
    (change,) = vector["change"]
    outbox = REC / change["outbox"]
    by_library = verify_outbox(outbox, ident.public_key, dock_public_key=_dock(vector)).to_json()
    assert _time(by_library) == vector["time"]
    assert sorted(f["kind"] for f in by_library["findings"]) == vector["finding_kinds"]
    dock = ["--dock-pub", str(REC / vector["dock_pub"])] if "dock_pub" in vector else []
    r = CliRunner().invoke(
        bwv, ["verify", str(outbox), "--device-pub", str(REC / "device.pub"), "--json", *dock]
    )
    assert (r.exit_code, json.loads(r.output)) == (1, by_library)
    assert verify_main([str(outbox), "--device-pub", str(REC / "device.pub")]) == 1
    by_module = json.loads(capsys.readouterr().out)
    unchecked = [s | {"dock_signature": "unchecked"} for s in vector["time"]["time_syncs"]]
    assert _time(by_module) == vector["time"] | {"time_syncs": unchecked}
    if dock:
        assert verify_main([str(outbox), "--device-pub", str(REC / "device.pub"), *dock]) == 1
        assert json.loads(capsys.readouterr().out) == by_library


def test_the_time_vectors_are_made_again_byte_for_byte(tmp_path) -> None:
    copy = tmp_path / "recording"
    made = [v["change"][0]["outbox"] for v in TIME_VECTORS]
    shutil.copytree(REC, copy, ignore=shutil.ignore_patterns(*made, "__pycache__"))
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run(
        [sys.executable, str(copy / "make_time_vectors.py")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    for name in made:
        a = sorted(p.relative_to(REC / name) for p in (REC / name).rglob("*") if p.is_file())
        b = sorted(p.relative_to(copy / name) for p in (copy / name).rglob("*") if p.is_file())
        assert a == b and a, name
        for p in a:
            assert (REC / name / p).read_bytes() == (copy / name / p).read_bytes(), (name, p)


def test_the_stored_report_agrees_with_the_hand_written_verdicts() -> None:
    """expected_report.json (made by the verifier) says what the hand-written verdicts say."""
    stored = json.loads((REC / "expected_report.json").read_text())
    (intact,) = [v for v in EXPECTED["vectors"] if v["name"] == "intact"]
    assert stored["ok"] is intact["ok"]
    assert [f["kind"] for f in stored["findings"]] == intact["finding_kinds"]
    (recording,) = stored["recordings"]
    assert recording["status"] == intact["recording"]["status"]
    assert [[[c["kind"], c["status"]] for c in s["chunks"]] for s in stored["segments"]] == [
        s["chunks"] for s in intact["segments"]
    ]
