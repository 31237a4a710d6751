"""The exhibit bundle ``bwv dock export`` writes: beside the footage and its signed records,
the papers an investigator needs (the device's key and the dock's signed enrollment of it,
the dock's receipts, the custody-log entries), the verifier's report on the folder as written
and a human-readable label, ``EXHIBIT.md`` (docs/evidence-format.md, "Exhibit bundle").

The verdict is the one ``bwv verify EXHIBIT --device-pub P`` gives: ``check_exhibit`` runs
``crypto.verify.exhibit`` on the folder just written, so the two can never disagree.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crypto.durable import write_atomic
from crypto.identity import key_id_of
from crypto.records import sha256_hex
from crypto.trail import TRAIL_NAME
from crypto.verify import Report
from crypto.verify.exhibit import (
    CUSTODY,
    DEVICE_PUB,
    ENROLLMENT,
    LABEL,
    RECEIPTS,
    REPORT,
    VERIFY_PAGE,
    is_paper,
    key_custody,
    read_exhibit,
    verify_exhibit,
)
from dock.exhibit_log import LogPapers, label_lines, write_log_papers
from dock.holdings import HeldRecord
from dock.store_sqlite import DirectoryStore
from dock.verify_page import verify_page


@dataclass
class Papers:
    """What the dock adds to the recording's evidence."""

    device_id: str
    public_key: bytes
    enrollment: dict[str, Any] | None = None
    receipts: list[dict[str, Any]] = field(default_factory=list)
    custody: list[dict[str, Any]] = field(default_factory=list)
    manifests: list[dict[str, Any]] = field(default_factory=list)  # the signed fields
    end: dict[str, Any] | None = None
    trail: bytes = b""  # the camera's trail lines that cover the recording, if given
    log: LogPapers | None = None  # the witnessed checkpoint and inclusion proofs


def gather_papers(store: DirectoryStore, device_id: str, records: list[HeldRecord]) -> Papers:
    device = store.get_device(device_id)
    assert device is not None
    p = Papers(device_id, bytes(device.public_key))
    ids = {r.held.segment_id for r in records}
    for e in store.custody_log(limit=10**9):
        if e.device_id != device_id:
            continue
        if e.action == "enrolled":
            p.enrollment = asdict(e)
        if e.action == "enrolled" or e.segment_id in ids:
            p.custody.append(asdict(e))
    for r in records:
        state = store.upload_state(device_id, r.held.segment_id)
        if state is not None and state.receipt is not None:
            p.receipts.append(state.receipt.to_json())
        if r.is_segment:
            p.manifests.append(dict(r.fields.raw))
        elif r.fields.record_type == "end":
            p.end = dict(r.fields.raw)
    return p


def write_papers(out: Path, papers: Papers) -> None:
    write_atomic(out / DEVICE_PUB, papers.public_key.hex().encode() + b"\n")
    if papers.enrollment is not None:
        write_atomic(out / ENROLLMENT, _json(papers.enrollment))
    write_atomic(out / RECEIPTS, b"".join(_line(r) for r in papers.receipts))
    write_atomic(out / CUSTODY, b"".join(_line(e) for e in papers.custody))
    if papers.trail:
        write_atomic(out / TRAIL_NAME, papers.trail)
    write_log_papers(out, papers.log)
    page = verify_page()
    if page is not None:  # the offline verifier page, for whoever receives the exhibit
        write_atomic(out / VERIFY_PAGE, page)


def trail_lines(trail: bytes, recording_id: str) -> bytes:
    """The lines of a camera's ``trail.jsonl`` that sign chunks of ``recording_id``, exactly
    as they are (a line that cannot be read is left out)."""
    keep = []
    for line in trail.splitlines(keepends=True):
        try:
            rec = json.loads(line)["record"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(rec, dict) and rec.get("recording_id") == recording_id:
            keep.append(line)
    return b"".join(keep)


def check_exhibit(path: Path, public_key: bytes, device_id: str | None = None) -> Report:
    """What ``bwv verify`` says of the exhibit at ``path`` (a folder or a zip)."""
    return verify_exhibit(read_exhibit(path), public_key, device_id)


def finish_exhibit(
    out: Path, papers: Papers, recording_id: str, extra_report: dict[str, Any]
) -> Report:
    """Check the folder as written, then write ``report.json`` and ``EXHIBIT.md``."""
    report = check_exhibit(out, papers.public_key, papers.device_id)
    rj = report.to_json() | extra_report
    write_atomic(out / REPORT, (json.dumps(rj, indent=2, sort_keys=True) + "\n").encode())
    write_atomic(out / LABEL, label(out, papers, recording_id, report).encode())
    return report


def zip_exhibit(out: Path) -> Path:
    """``OUT.zip``: the folder as one file (members under ``<OUT name>/``, fixed times)."""
    dst = out.with_name(out.name + ".zip")
    tmp = dst.with_name(dst.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(out.rglob("*")):
            if p.is_file():
                info = zipfile.ZipInfo(f"{out.name}/{p.relative_to(out).as_posix()}")
                info.date_time = (1980, 1, 1, 0, 0, 0)
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, p.read_bytes())
    tmp.replace(dst)
    return dst


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _line(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True).encode() + b"\n"


def _utc(us: int | None) -> str:
    if us is None:
        return "?"
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def label(out: Path, papers: Papers, recording_id: str, report: Report) -> str:
    """``EXHIBIT.md``: the exhibit as a person reads it."""
    ms = sorted(papers.manifests, key=lambda m: m.get("segment_index", 0))
    first, last = (ms[0], ms[-1]) if ms else ({}, {})
    start, end = first.get("wall_start_us"), last.get("wall_end_us")
    trig = first.get("trigger") or {}
    pre = (
        (trig["press_us"] - trig["pre_record_start_us"]) / 1e6
        if isinstance(trig.get("press_us"), int)
        and isinstance(trig.get("pre_record_start_us"), int)
        else None
    )
    enr = papers.enrollment or {}
    lines = [
        f"# Exhibit: recording {recording_id}",
        "",
        f"- device: {papers.device_id}, key id {key_id_of(papers.public_key)}",
        f"- enrolled at the dock: {_utc(enr.get('at_us'))}, token id "
        f"{(enr.get('detail') or {}).get('token_id', '?')} (signed entry: {ENROLLMENT})",
        f"- {key_custody(enr)}" if enr else "- key held: ? (no enrollment entry)",
        f"- start: {_utc(start)}; end: {_utc(end)}; clock: {first.get('wall_quality', '?')}",
        f"- duration: {(end - start) / 1e6:.3f} s" if start and end else "- duration: ?",
        f"- pre-record: {pre:.3f} s" if pre is not None else "- pre-record: ?",
        f"- ended: {(papers.end or {}).get('reason', 'no end record')}",
        *label_lines(papers.log),
        "",
        "## Files",
        "",
    ]
    for p in sorted(out.rglob("*")):
        name = p.relative_to(out).as_posix()
        if p.is_file() and name not in (LABEL, REPORT) and not is_paper(name):
            data = p.read_bytes()
            lines.append(f"- `{name}`: {len(data)} bytes, SHA-256 {sha256_hex(data)}")
    verdict = "VERIFIED: authentic and complete" if report.ok else "NOT VERIFIED"
    lines += [
        "",
        "## How to verify",
        "",
        "With the device's public key as the agency publishes it (not the copy in this folder):",
        "",
        f"    bwv verify {out.name} --device-pub DEVICE_KEY.pub",
        "",
        "or with the key of the dock that enrolled the device: "
        f"`bwv verify {out.name} --dock-pub DOCK_KEY.pub`",
        "",
        f"## Verdict when exported\n\n{verdict}",
    ]
    for f in report.findings:
        lines.append(f"- {f.kind}: {f.detail}" + (f" [{f.file}]" if f.file else ""))
    return "\n".join(lines) + "\n"
