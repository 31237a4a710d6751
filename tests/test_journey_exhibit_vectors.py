"""Issue 10, points 5-6: the exhibit test vectors (tests/vectors/exhibit/). Each bundle gives
the verdict written by hand beside it (expected_verdicts.json, from docs/evidence-format.md);
`bwv dock export`'s check of its own output (dock.exhibit.check_exhibit) and `bwv verify`
agree on every one; the bundles are made again, byte for byte, by their script."""

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
from crypto.identity import load_device_public_key
from dock.exhibit import check_exhibit

HERE = Path(__file__).parent / "vectors" / "exhibit"
EXPECTED = json.loads((HERE / "expected_verdicts.json").read_text())
VECTORS = sorted(EXPECTED["vectors"])


def _verify(bundle: Path, *anchor: str) -> tuple[int, dict]:
    r = CliRunner().invoke(main, ["verify", str(bundle), "--json", *anchor])
    return r.exit_code, json.loads(r.output)


@pytest.mark.parametrize("name", VECTORS)
def test_each_vector_gives_its_hand_written_verdict(name):
    want = EXPECTED["vectors"][name]
    agency = ("--agency-pub", str(HERE / EXPECTED["agency_pub"]))
    code, rep = _verify(HERE / name, "--device-pub", str(HERE / EXPECTED["device_pub"]), *agency)
    assert code == want["exit"], rep["findings"]
    assert sorted({f["kind"] for f in rep["findings"]}) == want["finding_kinds"], rep["findings"]
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


def test_the_bundles_are_made_again_byte_for_byte(tmp_path):
    copy = tmp_path / "exhibit"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns(*VECTORS, "__pycache__"))
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


def test_the_exhibit_vectors_are_small():
    """Thirteen bundles and their source: small enough to read and to keep in the repository."""
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    assert total < 300_000
