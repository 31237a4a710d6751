"""The verifier against hand-written verdicts (tests/vectors/recording/EXPECTED.md and
expected_verdicts.json), not against its own earlier output: the recording vector as
stored, and changes made to a copy of its outbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey

from crypto.identity import DeviceIdentity
from crypto.verify import Report, read_outbox, verify

REC = Path(__file__).parent / "vectors" / "recording"
EXPECTED = json.loads((REC / "expected_verdicts.json").read_text())


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


@pytest.mark.parametrize("vector", EXPECTED["vectors"], ids=lambda v: v["name"])
def test_report_matches_the_hand_written_verdicts(vector: dict[str, Any]) -> None:
    ident, agency = _keys()
    files = _changed(read_outbox(REC / "outbox"), vector["change"])
    rep = verify(files, ident.public_key, agency)
    assert all(r.recording_id == EXPECTED["recording_id"] for r in rep.recordings)
    want = {k: vector[k] for k in ("ok", "finding_kinds", "recording", "segments")}
    assert _verdicts(rep) == want


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
