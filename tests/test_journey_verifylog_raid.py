"""Issue 11, point 7: the raid shows it. `bwv sim raid` runs a witness and a TSA on loopback
(OUT/witness, OUT/tsa); summary.json's `witness` names the witness's public key and the
latest checkpoint it cosigned for the dock's log; every exhibit carries the cosigned
checkpoint and an inclusion proof per record; `bwv verify OUT` uses them: the pristine raid
verifies, and what the dock's operator does behind the witness's back does not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bwv.cli import main
from capture.config import from_dict
from crypto.verify.log import LogTrust, open_checkpoint
from simulator.raid import RAID_ENTRIES, RaidPlan, run_raid
from tests.conftest import SMALL
from tests.test_journey_verifylog_store import _delete_recording


def bwv(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def raid(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("raid") / "out"
    result = run_raid(from_dict(SMALL), out, RaidPlan(record_s=1.0))
    assert result.ok, result.problems
    return out


@pytest.fixture
def copy(raid, tmp_path) -> Path:
    dst = tmp_path / "out"
    shutil.copytree(raid, dst)
    return dst


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_the_summary_names_the_witness_key_and_its_latest_checkpoint(raid):
    w = _summary(raid)["witness"]
    assert {"witness", "tsa"} <= {p.name for p in raid.iterdir()} <= RAID_ENTRIES
    vkey = (raid / w["public_key"]).read_text().strip()
    note = (raid / w["checkpoint"]).read_bytes()
    cp, findings = open_checkpoint(note, LogTrust((vkey,)), "the witness's checkpoint")
    assert findings == [] and cp is not None
    assert cp.origin == w["origin"] and cp.witnesses == ("bwv-sim-witness",)
    assert cp.size > 0


def test_each_exhibit_carries_the_cosigned_checkpoint_and_a_proof_per_record(raid):
    s = _summary(raid)
    ex = raid / s["exhibits"][0]
    records = sorted((ex / "manifests").iterdir())
    proofs = [json.loads(x) for x in (ex / "log" / "proofs.jsonl").read_text().splitlines()]
    assert len(proofs) == len(records) > 0
    assert (ex / "log" / "checkpoint.tsr").stat().st_size > 0
    assert (ex / "log" / "checkpoint").read_bytes() == (
        raid / s["witness"]["checkpoint"]
    ).read_bytes()
    label = (ex / "EXHIBIT.md").read_text()
    assert f"checkpoint {s['witness']['origin']} size" in label and "bwv-sim-witness" in label


def test_bwv_verify_on_the_pristine_raid_uses_the_witness_and_verifies(raid):
    r = bwv("verify", raid)
    assert r.exit_code == 0, r.output
    assert "cosigned by bwv-sim-witness" in r.output
    assert "records in the witnessed log: present" in r.output
    assert "recorded before" in r.output and "(RFC 3161, UTC)" in r.output
    assert "ALL VERIFIED" in r.output


def test_an_exhibit_missing_a_records_proof_is_withheld(copy):
    ex = copy / _summary(copy)["exhibits"][0]
    proofs = (ex / "log" / "proofs.jsonl").read_text().splitlines(keepends=True)
    (ex / "log" / "proofs.jsonl").write_text("".join(proofs[1:]))
    r = bwv("verify", copy)
    assert r.exit_code == 1, r.output
    assert "withheld: chain record" in r.output


def test_the_dock_operator_deleting_the_recording_is_withheld(copy):
    rec = _summary(copy)["recordings"][0]["id"]
    _delete_recording(copy / "dock", rec, rewrite_log=False)
    r = bwv("verify", copy, "--json")
    assert r.exit_code == 1
    kinds = {f["kind"] for f in json.loads(r.output)["findings"]}
    assert "withheld" in kinds


def test_a_checkpoint_the_witness_did_not_cosign_is_unwitnessed(copy):
    w = _summary(copy)["witness"]
    (copy / w["checkpoint"]).write_bytes((copy / "dock" / "log" / "checkpoint").read_bytes())
    forged = (copy / w["checkpoint"]).read_text().splitlines(keepends=True)
    (copy / w["checkpoint"]).write_text("".join(x for x in forged if "bwv-sim-witness" not in x))
    r = bwv("verify", copy)
    assert r.exit_code == 1, r.output
    assert "unwitnessed" in r.output
