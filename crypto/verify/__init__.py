"""Offline verifier: what in a set of files is authentic, missing, altered, reordered,
substituted or unsigned. Kept apart from signing: it needs only the device's public key
(and, to check plaintext too, the agency's private key).

Input: files by name (stored segments, set-aside ``.unsigned`` files, chain records, the
trail). Output: a ``Report`` with a status per segment and per chunk (chunk 0 is the init
blob, chunk k the k-th fragment, then the FINAL chunk), a status per recording, and the
findings; ``ok`` is True only when there is no finding at all: everything authentic and
complete. Bad input never raises: every malformed file is a finding.

Statuses (segments and chunks): ``authentic``, ``missing``, ``altered``, ``reordered``,
``substituted`` (from another device or another recording), ``unsigned`` (present, but no
signature covers it), ``duplicated`` (chunks only). Recordings: ``complete``,
``ended_early`` (ended for a reason other than "stopped", or by recovery after a crash),
``cut_short`` (no end record after its last segment), ``incomplete`` (a segment is not
authentic and whole).

Limits: records past the newest one given (the chain's tail) cannot be missed by anyone who
never saw them; the dock's receipts close that gap.

The verifier is built of rooms, one per concern: ``inputs`` (which file is what), ``trail``
(the fragment-by-fragment signature trail), ``chain`` (manifest and end records and their
links), ``segments`` (each manifest against its stored file), ``leftovers`` (what no
manifest covers), ``recordings`` (the verdict per recording) and ``report`` (what it says);
``verifier`` puts them together.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crypto.identity import (
    IdentityError,
    load_agency_private_key,
    load_agency_public_key,
    load_device_public_key,
    load_dock_public_key,
)
from crypto.verify.chain import RecordCheck, check_chain_record
from crypto.verify.inputs import is_evidence, read_outbox
from crypto.verify.report import (
    ALTERED,
    AUTHENTIC,
    DUPLICATED,
    MISSING,
    REORDERED,
    SUBSTITUTED,
    UNSIGNED,
    ChunkReport,
    Finding,
    RecordingReport,
    Report,
    SegmentReport,
)
from crypto.verify.verifier import verify, verify_outbox

__all__ = [
    "ALTERED",
    "AUTHENTIC",
    "DUPLICATED",
    "MISSING",
    "REORDERED",
    "SUBSTITUTED",
    "UNSIGNED",
    "ChunkReport",
    "Finding",
    "RecordCheck",
    "RecordingReport",
    "Report",
    "SegmentReport",
    "check_chain_record",
    "is_evidence",
    "main",
    "read_outbox",
    "verify",
    "verify_outbox",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m crypto.verify", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("outbox", type=Path, help="directory with segments/, chain/, trail.jsonl")
    ap.add_argument("--device-pub", type=Path, required=True, help="device public key file")
    ap.add_argument("--agency-key", type=Path, help="agency X25519 private key (optional)")
    ap.add_argument("--agency-pub", type=Path, help="agency X25519 public key (optional)")
    ap.add_argument("--device-id", help="expected device id")
    ap.add_argument(
        "--dock-pub", type=Path, help="dock Ed25519 public key: checks its signed time answers"
    )
    args = ap.parse_args(argv)
    try:
        pk = load_device_public_key(args.device_pub)
        sk = load_agency_private_key(args.agency_key) if args.agency_key else None
        apk = load_agency_public_key(args.agency_pub) if args.agency_pub else None
        dk = bytes(load_dock_public_key(args.dock_pub)) if args.dock_pub else None
    except IdentityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = verify_outbox(
        args.outbox,
        pk,
        sk,
        device_id=args.device_id,
        agency_public_key=apk,
        dock_public_key=dk,
    )
    json.dump(report.to_json(), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0 if report.ok else 1
