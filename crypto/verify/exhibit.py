"""Exhibits: one recording as it leaves the agency (``bwv dock export``), checked by whoever
receives it with nothing but the device's public key, or the key of the dock that enrolled
the device (docs/evidence-format.md, "Exhibit bundle").

An exhibit is a folder (or a ``.zip`` of one) holding ``EXHIBIT.md`` and the evidence: the
recording's signed chain records (``manifests/``), its segments (decrypted ``.mp4`` files,
or the stored ``segments/*.bwvseg``), optionally the trail lines that cover it
(``trail.jsonl``), and the papers: ``device.pub``, ``enrollment.json`` (the dock's signed
custody-log entry that bound the device id to its key), ``receipts.jsonl``,
``custody.jsonl``, ``report.json``, ``verify.html`` (the offline verifier page), and the log
papers (``log/checkpoint``, ``log/checkpoint.tsr``, ``log/proofs.jsonl``,
``log/checkpoints/<m>`` and ``<m>.tsr``: crypto/verify/log.py, read only given a witness
key). The papers are not evidence: the verifier reads only ``device.pub`` and
``enrollment.json``, and only to find the device's key from a dock key (and where that key
is held: ``key_custody``). Any other file is a finding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.public import PublicKey
from nacl.signing import VerifyKey

from crypto.manifest import parse_chain_file_name
from crypto.verify.inputs import is_evidence, read_outbox
from crypto.verify.log import LOG_PAPERS, LogTrust, apply_log, is_log_paper
from crypto.verify.report import Report
from crypto.verify.verifier import verify

LABEL = "EXHIBIT.md"
REPORT = "report.json"
DEVICE_PUB = "device.pub"
ENROLLMENT = "enrollment.json"
RECEIPTS = "receipts.jsonl"
CUSTODY = "custody.jsonl"
VERIFY_PAGE = "verify.html"  # the offline verifier page (verifier/), for the investigator
PAPERS = (LABEL, REPORT, DEVICE_PUB, ENROLLMENT, RECEIPTS, CUSTODY, VERIFY_PAGE, *LOG_PAPERS)
MAX_ZIP_MEMBER = 1 << 32
EXTRA = "extra"  # finding: a file in the bundle that is neither evidence nor one of its papers


class ExhibitError(Exception):
    """The exhibit cannot be read (exit 2), or (``wanting``) its papers do not establish
    the device's key from the dock key given (exit 1)."""

    def __init__(self, message: str, wanting: bool = False) -> None:
        super().__init__(message)
        self.wanting = wanting


def is_exhibit(path: Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return (path / LABEL).is_file()
    return path.is_file() and zipfile.is_zipfile(path)


def read_exhibit(path: Path) -> dict[str, bytes]:
    """The exhibit's files by name relative to its folder (a zip's single top folder, if it
    has one, is dropped)."""
    path = Path(path)
    if path.is_dir():
        return read_outbox(path)
    try:
        with zipfile.ZipFile(path) as z:
            files = {
                i.filename: z.read(i)
                for i in z.infolist()
                if not i.is_dir() and i.file_size < MAX_ZIP_MEMBER
            }
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExhibitError(f"{path}: not a readable zip: {exc}") from None
    tops = {PurePosixPath(n).parts[0] for n in files}
    if len(tops) == 1 and all("/" in n for n in files):
        top = tops.pop() + "/"
        files = {n[len(top) :]: d for n, d in files.items()}
    return files


def _hex_key(data: bytes | None, what: str) -> bytes:
    """A device key in hex: Ed25519 (32 bytes) or P-256 (65 bytes, 0x04||X||Y)."""
    try:
        raw = bytes.fromhex((data or b"").decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raw = b""
    if len(raw) != 32 and not (len(raw) == 65 and raw[0] == 4):
        raise ExhibitError(
            f"{what}: not a device key in hex (32-byte Ed25519, or 65-byte P-256 from 04)",
            wanting=True,
        )
    return raw


def key_custody(enrollment: Mapping[str, Any] | None) -> str:
    """Where the dock's enrollment entry says the device's key is held: "key held in a TPM,
    attested by <the TPM CA's subject>" or "key held in a file" (so is every key enrolled
    before TPM keys were: its entry names no ``key_store``)."""
    detail = (enrollment or {}).get("detail")
    detail = detail if isinstance(detail, Mapping) else {}
    if detail.get("key_store") == "tpm":
        return f"key held in a TPM, attested by {detail.get('attested_by') or '?'}"
    return "key held in a file"


def _canonical(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def device_key_from_enrollment(files: dict[str, bytes], dock_public_key: bytes) -> bytes:
    """The device's public key as the dock with ``dock_public_key`` enrolled it: the
    bundle's ``enrollment.json`` must be that dock's signed entry, naming the SHA-256 of the
    bundle's ``device.pub``."""
    try:
        e = json.loads(files[ENROLLMENT])
        body = {k: e[k] for k in e if k not in ("entry_hash", "signature")}
        h = hashlib.sha256(_canonical(body)).hexdigest()
        sig = base64.b64decode(e["signature"], validate=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise ExhibitError(f"{ENROLLMENT}: missing or unreadable ({exc})", wanting=True) from None
    if e.get("action") != "enrolled" or h != e.get("entry_hash"):
        raise ExhibitError(f"{ENROLLMENT}: not an enrollment entry, or altered", wanting=True)
    try:
        VerifyKey(dock_public_key).verify(bytes.fromhex(h), sig)
    except (BadSignatureError, ValueError, TypeError):
        raise ExhibitError(
            f"{ENROLLMENT}: not signed by the dock key given", wanting=True
        ) from None
    pub = _hex_key(files.get(DEVICE_PUB), DEVICE_PUB)
    if hashlib.sha256(pub).hexdigest() != e.get("sha256"):
        raise ExhibitError(f"{DEVICE_PUB}: is not the key the dock enrolled", wanting=True)
    return pub


def is_paper(name: str) -> bool:
    """One of the exhibit's papers (``PAPERS``, or a first checkpoint ``log/checkpoints/<m>``
    and its token ``log/checkpoints/<m>.tsr``)."""
    return name in PAPERS or is_log_paper(name)


def evidence_of(files: dict[str, bytes]) -> dict[str, bytes]:
    """The exhibit's files less its papers: what the verifier checks."""
    return {n: d for n, d in files.items() if not is_paper(n)}


def _first_chain_seq(names: list[str]) -> int:
    """The smallest chain seq among the bundle's record files (by name)."""
    seqs = [p[0] for n in names if (p := parse_chain_file_name(n.rsplit("/", 1)[-1]))]
    return min(seqs, default=0)


def _first_trail_seq(data: bytes | None) -> int:
    for line in (data or b"").splitlines():
        try:
            return int(json.loads(line)["record"]["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def verify_exhibit(
    files: dict[str, bytes],
    device_public_key: bytes,
    device_id: str | None = None,
    require_trail: bool = False,
    agency_public_key: PublicKey | None = None,
    trust: LogTrust | None = None,
    dock_public_key: bytes | None = None,
) -> Report:
    """The verifier on an exhibit's evidence: it holds one recording's chain records (so
    the chain is checked from the first of them) and, maybe, the trail lines covering it;
    with ``trust`` (the witness keys) each record must be in the witnessed log."""
    ev = evidence_of(files)
    trail = next((d for n, d in ev.items() if n.endswith(".jsonl")), None)
    report = verify(
        ev,
        device_public_key,
        device_id=device_id,
        first_chain_seq=_first_chain_seq(list(ev)),
        first_trail_seq=_first_trail_seq(trail),
        require_trail=require_trail,
        agency_public_key=agency_public_key,
        dock_public_key=dock_public_key,
    )
    for f in report.findings:
        if f.kind == "unrecognized":
            f.kind, f.detail = EXTRA, "a file that is not part of the exhibit"
    apply_log(report, {**ev, **{n: d for n, d in files.items() if is_log_paper(n)}}, trust)
    return report


def verify_exhibit_path(
    path: Path,
    device_public_key: bytes | None = None,
    dock_public_key: bytes | None = None,
    device_id: str | None = None,
    agency_public_key: PublicKey | None = None,
    trust: LogTrust | None = None,
) -> Report:
    """``bwv verify EXHIBIT``: the trust anchor is the device's key, or the dock's key that
    signed the enrollment in the bundle."""
    files = read_exhibit(path)
    if not any(is_evidence(n, d) for n, d in evidence_of(files).items()):
        raise ExhibitError(f"{path}: holds no evidence file (no signed record, no segment)")
    if device_public_key is None:
        if dock_public_key is None:
            raise ExhibitError("--device-pub or --dock-pub is needed: the key to trust")
        device_public_key = device_key_from_enrollment(files, dock_public_key)
    return verify_exhibit(
        files,
        device_public_key,
        device_id,
        agency_public_key=agency_public_key,
        trust=trust,
        dock_public_key=dock_public_key,
    )
