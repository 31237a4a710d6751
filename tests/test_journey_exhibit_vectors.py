"""Issue 10, points 5-6, and issue 11, point 8: the exhibit test vectors (tests/vectors/exhibit/).
Each bundle gives the verdict written by hand beside it (expected_verdicts.json, from
docs/evidence-format.md); `bwv dock export`'s check of its own output
(dock.exhibit.check_exhibit) and `bwv verify` agree on every one; the bundles with the log
papers give theirs through every entry point (`bwv verify` on the folder and on its zip, with
the device key or the dock key, and the library) when the witness's key and checkpoint are
given; the bundles are made again, byte for byte, by their script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bwv.cli import main
from crypto.identity import load_agency_public_key, load_device_public_key
from crypto.verify.exhibit import verify_exhibit_path
from crypto.verify.log import LogTrust, read_witness_keys
from dock.exhibit import check_exhibit, zip_exhibit

HERE = Path(__file__).parent / "vectors" / "exhibit"
EXPECTED = json.loads((HERE / "expected_verdicts.json").read_text())
VECTORS = sorted(EXPECTED["vectors"])
LOG_VECTORS = sorted(n for n, v in EXPECTED["vectors"].items() if v.get("log"))
W = EXPECTED["witness"]
WITNESS = (
    *("--witness-key", str(HERE / W["witness_key"])),
    *("--checkpoint", str(HERE / W["checkpoint"])),
    *("--dock-pub", str(HERE / W["dock_pub"])),
)


def _verify(bundle: Path, *anchor: str) -> tuple[int, dict]:
    r = CliRunner().invoke(main, ["verify", str(bundle), "--json", *anchor])
    return r.exit_code, json.loads(r.output)


def _check_log(rep: dict, want: dict) -> None:
    """What the hand-written verdict says of the log: each finding's record or file, the
    records shown included, and T1."""
    if "finding_seqs" in want:
        assert [f["seq"] for f in rep["findings"]] == want["finding_seqs"], rep["findings"]
    if "finding_files" in want:
        assert [f["file"] for f in rep["findings"]] == want["finding_files"], rep["findings"]
    if "included" in want:
        assert rep["log"]["included"] == want["included"]
    assert rep["log"]["checked"] is True
    (rec,) = rep["recordings"]
    assert rec["recorded_before_us"] == want["recorded_before_us"]


@pytest.mark.parametrize("name", VECTORS)
def test_each_vector_gives_its_hand_written_verdict(name):
    want = EXPECTED["vectors"][name]
    agency = ("--agency-pub", str(HERE / EXPECTED["agency_pub"]))
    log = WITNESS if want.get("log") else ()
    code, rep = _verify(
        HERE / name, "--device-pub", str(HERE / EXPECTED["device_pub"]), *agency, *log
    )
    assert code == want["exit"], rep["findings"]
    assert sorted({f["kind"] for f in rep["findings"]}) == want["finding_kinds"], rep["findings"]
    if want.get("log"):
        assert len(rep["findings"]) == len(want["finding_kinds"]), rep["findings"]
        _check_log(rep, want)
    assert [r["status"] for r in rep["recordings"]] == [want["recording"]]
    got = {str(s["segment_index"]): s["status"] for s in rep["segments"]}
    assert got == want["segments"]
    for idx, chunks in want.get("chunks", {}).items():
        seg = next(s for s in rep["segments"] if str(s["segment_index"]) == idx)
        assert [[c["kind"], c["status"]] for c in seg["chunks"]] == chunks


@pytest.mark.parametrize("name", VECTORS)
def test_the_export_check_and_bwv_verify_agree(name):
    pk = load_device_public_key(HERE / EXPECTED["device_pub"])
    by_export = check_exhibit(HERE / name, pk).to_json()
    code, by_verify = _verify(HERE / name, "--device-pub", str(HERE / EXPECTED["device_pub"]))
    assert by_export == by_verify
    code_dock, by_dock_key = _verify(HERE / name, "--dock-pub", str(HERE / "dock.pub"))
    assert (code_dock, by_dock_key) == (code, by_verify)


def _library(bundle: Path) -> dict:
    """The library's entry point, given the same trust as the command line."""
    trust = LogTrust(
        read_witness_keys([str(HERE / W["witness_key"])]),
        (HERE / W["checkpoint"]).read_bytes(),
        bytes.fromhex((HERE / W["dock_pub"]).read_text().strip()),
    )
    rep = verify_exhibit_path(
        bundle,
        load_device_public_key(HERE / EXPECTED["device_pub"]),
        agency_public_key=load_agency_public_key(HERE / EXPECTED["agency_pub"]),
        trust=trust,
    )
    return rep.to_json()


@pytest.mark.parametrize("name", LOG_VECTORS)
def test_every_entry_point_gives_a_log_vector_its_verdict(name, tmp_path):
    """The folder with the device key, the folder with the dock key (through the enrollment),
    its zip, and the library: one report."""
    want = EXPECTED["vectors"][name]
    agency = ("--agency-pub", str(HERE / EXPECTED["agency_pub"]))
    device = ("--device-pub", str(HERE / EXPECTED["device_pub"]))
    code, by_device = _verify(HERE / name, *device, *agency, *WITNESS)
    shutil.copytree(HERE / name, tmp_path / name)
    zipped = zip_exhibit(tmp_path / name)
    assert _verify(zipped, *device, *agency, *WITNESS) == (code, by_device)
    assert _verify(HERE / name, *agency, *WITNESS) == (code, by_device)  # --dock-pub only
    assert _library(HERE / name) == by_device
    assert code == want["exit"]
    assert sorted({f["kind"] for f in by_device["findings"]}) == want["finding_kinds"]


@pytest.mark.parametrize("name", LOG_VECTORS)
def test_without_a_witness_key_the_log_papers_are_ignored(name):
    """The log papers are papers: a verifier given no witness key says nothing of the log,
    and every log vector is then the pristine exhibit (F.md, "The exhibit's log papers")."""
    device = ("--device-pub", str(HERE / EXPECTED["device_pub"]))
    code, rep = _verify(HERE / name, *device)
    assert (code, rep["findings"]) == (0, []), rep["findings"]
    assert "log" not in rep or not rep["log"] or not rep["log"].get("checked")


def test_the_bundles_are_made_again_byte_for_byte(tmp_path):
    copy = tmp_path / "exhibit"
    shutil.copytree(
        HERE,
        copy,
        ignore=shutil.ignore_patterns(*VECTORS, "witness.*", "__pycache__"),
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run(
        [sys.executable, str(copy / "make_vectors.py")], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    for name in VECTORS:
        a = sorted(p.relative_to(HERE / name) for p in (HERE / name).rglob("*") if p.is_file())
        b = sorted(p.relative_to(copy / name) for p in (copy / name).rglob("*") if p.is_file())
        assert a == b, name
        for p in a:
            assert (HERE / name / p).read_bytes() == (copy / name / p).read_bytes(), (name, p)
    for name in ("witness.vkey", "witness.checkpoint"):
        assert (HERE / name).read_bytes() == (copy / name).read_bytes(), name


def test_the_exhibit_vectors_are_small():
    """Nineteen bundles and their source: small enough to read and to keep in the repository."""
    files = [p for p in HERE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    total = sum(p.stat().st_size for p in files)
    assert total < 450_000
