"""The agency key check (format v2): which agency key each segment is sealed to.

Every manifest signs ``agency_key_id`` (first 16 hex digits of SHA-256 of the agency's
32-byte X25519 public key the segment key is sealed to), and so does the stored file's header
context (signed through the manifest's ``header_sha256``). Given the agency's key (its
private key, or its public key alone), a segment whose signed ``agency_key_id`` is another
key's is ``wrong_agency_key``: its footage was sealed to a substitute key (a swapped
``agency.pub``), so the agency cannot open it, and whoever holds that other key can. The
segment's status stays what its bytes make it (they are as the device signed them).

Without the agency's key only the consistency is checked: a signed header that names another
agency key than its own manifest is ``altered``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from nacl.public import PublicKey

from crypto.records import RecordError, parse_line
from crypto.seal import SealFormatError, agency_key_id, parse_header
from crypto.verify.report import ALTERED, Finding, Report, SegmentReport

WRONG_AGENCY_KEY = "wrong_agency_key"


def expected_agency_key_id(agency_key: PublicKey | bytes | None) -> str | None:
    """The agency key id of the public key given (None: no agency key given)."""
    return None if agency_key is None else agency_key_id(bytes(agency_key))


def check_agency_keys(report: Report, files: Mapping[str, bytes], expected: str | None) -> None:
    """Add the agency key findings of ``report``'s segments (``files``: the verifier's
    input, by the names the report uses); ``expected``: the id of the agency key given."""
    found: list[Finding] = []
    for seg in report.segments:
        manifest = _manifest(files.get(seg.manifest or ""))
        if manifest is None:
            continue
        found += _check_segment(seg, manifest, files.get(seg.file or ""), expected)
    if found:
        report.findings += found
        report.ok = False


def _check_segment(
    seg: SegmentReport, manifest: dict[str, Any], stored: bytes | None, expected: str | None
) -> list[Finding]:
    signed = manifest["agency_key_id"]
    where: dict[str, Any] = dict(
        recording_id=seg.recording_id, segment_index=seg.segment_index, seq=seg.manifest_seq
    )
    out = []
    header = _signed_header_key_id(stored, manifest["header_sha256"])
    if header is not None and header != signed:
        out.append(
            Finding(
                ALTERED,
                f"segment {seg.recording_id}/{seg.segment_index}: its signed header names "
                f"agency key {header}, its manifest agency key {signed}",
                file=seg.file,
                **where,
            )
        )
    wrong = sorted({k for k in (signed, header) if k is not None and k != expected})
    if expected is not None and wrong:
        out.append(
            Finding(
                WRONG_AGENCY_KEY,
                f"segment {seg.recording_id}/{seg.segment_index} is sealed to agency key "
                f"{', '.join(wrong)}, not to the agency key given ({expected}): the agency "
                "cannot open it, whoever holds that key can (a substituted agency.pub)",
                file=seg.manifest,
                **where,
            )
        )
    return out


def _manifest(line: bytes | None) -> dict[str, Any] | None:
    """The manifest record in ``line`` (the verifier has checked its signature already)."""
    if line is None:
        return None
    try:
        record, _ = parse_line(line)
    except RecordError:
        return None
    if record.get("type") != "manifest" or not isinstance(record.get("agency_key_id"), str):
        return None
    return record


def _signed_header_key_id(stored: bytes | None, header_sha256: str) -> str | None:
    """The agency key id in a stored file's header, if that header is the signed one."""
    if stored is None:
        return None
    try:
        ctx, _, end = parse_header(stored)
    except SealFormatError:
        return None
    if hashlib.sha256(stored[:end]).hexdigest() != header_sha256:
        return None  # another header: the segments room reports it altered
    return ctx.agency_key_id
