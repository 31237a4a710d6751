"""Hand evidence over: what the dock holds, laid out as the device's outbox, checked, and
(with the agency's key) decrypted into playable files.

``export_device`` writes ``chain/<seq:012d>.<type>.json`` and ``segments/<file>`` (crypto/
FORMAT.md, "Outbox") so that crypto/'s offline verifier checks the dock's holdings exactly as
it checks a camera's outbox (without the trail, which stays on the device);
``export_custody_log`` writes the custody-log entries about the device, one JSON object a
line, for the auditor (with ``verify_custody_log`` and the dock's public key).

``export_recording`` hands one recording over (``bwv dock export``): its chain records and
stored segments, read from the dock's store in the outbox layout, are checked by
``crypto.verify``; the report, the records and the footage are written to a folder::

    OUT/<recording>_<idx>.mp4            playable fragmented MP4 (only with the agency key)
    OUT/segments/<recording>_<idx>.bwvseg the stored, encrypted segments (only without it)
    OUT/manifests/<seq:012d>.<manifest|end>.json   the recording's signed chain records
    OUT/report.json                      crypto.verify's report on the dock's copies, and
                                         ("export") what became of each segment

A segment without a frame (cut right after its header) is listed as empty, not written as a
0-frame MP4; a folder holding an earlier export is refused unless asked to replace it
(dock/export_folder.py).

``scan_recordings`` (dock/holdings.py, re-exported here) lists what the dock holds per
recording, with a verification state taken from the index and the signed records (``bwv dock
status``); ``verify_recording`` re-checks a recording's stored bytes with the offline
verifier.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey

from crypto.durable import write_atomic
from crypto.evidence import SEGMENTS_DIR
from crypto.manifest import CHAIN_DIR, chain_file_name
from crypto.records import sha256_hex
from crypto.verify import Finding, Report, verify
from dock.exhibit import finish_exhibit, gather_papers, trail_lines, write_papers, zip_exhibit
from dock.exhibit_log import gather_log_papers
from dock.export_folder import (
    COPIED,
    EMPTY,
    MANIFESTS_DIR,
    MISSING,
    REPORT_FILE,
    WRITTEN,
    SegmentOut,
    clear_earlier_export,
    describe,
    earlier_export,
    export_listing,
    hand_over,
    not_an_export_folder,
)
from dock.holdings import (
    ENDED_EARLY,
    FAILED,
    GAP,
    INCOMPLETE,
    VERIFIED,
    DeviceHoldings,
    ExportError,
    HeldRecord,
    RecordingSummary,
    check_device_id,
    check_recording_id,
    device_holdings,
    find_recording,
    object_path,
    open_store,
    scan_recordings,
)
from dock.instance import wall_clock_us
from dock.store import blob_key, manifest_key, unsigned_key
from dock.store_sqlite import DirectoryStore
from dock.verify import ChainRecordVerifier

_SAFE_FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,159}")


# --------------------------------------------------------------------------- outbox layout


def _stored_name(r: HeldRecord) -> str:
    """The stored segment's file name in the outbox layout: the one its manifest names (the
    verifier looks for it), unless that is no safe plain file name."""
    name = str(r.fields.raw.get("file", ""))
    if _SAFE_FILE.fullmatch(name):
        return name
    return f"{r.fields.recording_id}_{r.fields.segment_index or 0:04d}.bwvseg"


def outbox_files(
    store: DirectoryStore,
    device_id: str,
    records: list[HeldRecord],
    progress: Callable[[str], None] | None = None,
) -> dict[str, bytes]:
    """The records and their stored segments as ``{outbox-relative name: bytes}``: what
    ``export_device`` writes, for the given records only. A stored object that cannot be
    read is left out (the verifier reports it missing)."""
    files: dict[str, bytes] = {}
    n_segs = sum(1 for r in records if r.is_segment)
    k = 0
    for r in records:
        try:
            with store.open_object(manifest_key(device_id, r.held.segment_id)) as f:
                files[f"{CHAIN_DIR}/{chain_file_name(r.seq, r.fields.record_type)}"] = f.read()
        except OSError:
            continue
        if r.is_segment:
            k += 1
            try:
                with store.open_object(blob_key(device_id, r.held.segment_id)) as f:
                    files[f"{SEGMENTS_DIR}/{_stored_name(r)}"] = f.read()
            except OSError:
                pass
            tail = r.fields.raw.get("unsigned_tail")  # set-aside unsigned bytes, if received
            if isinstance(tail, dict) and _SAFE_FILE.fullmatch(str(tail.get("file"))):
                key = unsigned_key(device_id, r.held.segment_id)
                with contextlib.suppress(OSError), store.open_object(key) as f:
                    files[f"{SEGMENTS_DIR}/{tail['file']}"] = f.read()
            if progress:
                progress(
                    f"[{k}/{n_segs}] read segment {r.fields.segment_index} of "
                    f"{r.fields.recording_id} from the dock ({r.held.stored_size} bytes)"
                )
    return files


def _link_to_predecessor(
    store: DirectoryStore, device_id: str, first: HeldRecord, files: dict[str, bytes]
) -> Finding | None:
    """The recording's first record must name the held record before it (the verifier,
    given only the recording, cannot see that link)."""
    if first.seq == 0:
        return None
    prev = store.held_segment(device_id, seq=first.seq - 1)
    if prev is None:
        return None  # a gap before the recording: the device's chain, not this recording
    try:
        with store.open_object(manifest_key(device_id, prev.segment_id)) as f:
            prev_sha = sha256_hex(f.read())
    except OSError:
        return None
    if first.fields.prev_manifest_sha256 != prev_sha:
        return Finding(
            "chain_break",
            f"chain record {first.seq} does not name the record {first.seq - 1} the dock "
            "holds as its predecessor",
            file=f"{CHAIN_DIR}/{chain_file_name(first.seq, first.fields.record_type)}",
            recording_id=first.fields.recording_id,
            seq=first.seq,
        )
    return None


def verify_recording(
    store: DirectoryStore,
    device_id: str,
    records: list[HeldRecord],
    agency_private_key: PrivateKey | None = None,
    progress: Callable[[str], None] | None = None,
    agency_public_key: bytes | None = None,
) -> tuple[Report, dict[str, bytes]]:
    """crypto.verify on the dock's copies of one recording's records (outbox layout), plus
    the link of its first record to the one before it (``agency_public_key``: the agency
    key the segments must be sealed to, when no private key is given)."""
    device = store.get_device(device_id)
    if device is None:
        raise ExportError(f"no device {device_id!r} is enrolled at this dock")
    files = outbox_files(store, device_id, records, progress)
    if progress:
        progress(
            f"verifying {len(records)} chain records and their segments"
            + (" (decrypting)" if agency_private_key is not None else "")
        )
    report = verify(
        files,
        device.public_key,
        agency_private_key,
        device_id=device_id,
        first_chain_seq=records[0].seq,
        require_trail=False,
        agency_public_key=agency_public_key,
    )
    for f in report.findings:  # the camera shipped them: say that the dock has them
        if f.kind == "unsigned" and f.file in files and ".unsigned" in (f.file or ""):
            f.detail = (
                f"{len(files[f.file])} bytes unsigned, received: set aside by the "
                "camera's recovery after the last signed chunk, never signed"
            )
    link = _link_to_predecessor(store, device_id, records[0], files)
    if link is not None:
        report.findings.append(link)
        report.ok = False
    return report, files


# --------------------------------------------------------------------------- export


@dataclass
class ExportResult:
    recording_id: str
    device_id: str
    segments: list[Path]  # playable MP4 files in OUT, in order (empty without the agency key)
    stored: list[Path]  # the dock's stored (encrypted) copies, inside the store directory
    manifests: list[Path]  # the recording's chain records in OUT/manifests, in chain order
    report: dict[str, Any]  # crypto.verify's Report.to_json() on the dock's copies, plus
    #                         "export": what became of each segment (export_folder)
    ok: bool  # verified, and (with the agency key) every segment decrypted and written
    report_path: Path | None = None
    encrypted: list[Path] = field(default_factory=list)  # OUT/segments (without agency key)
    problems: list[str] = field(default_factory=list)  # why not ok, for a person
    decrypted: bool = False  # the agency key was given
    handed_over: list[SegmentOut] = field(default_factory=list)  # per segment, in order
    replaced: list[str] = field(default_factory=list)  # an earlier export's entries, removed
    zipped: Path | None = None  # OUT.zip (with zip_to)

    @property
    def empty(self) -> list[int]:
        """Segments that hold no frame (listed, no MP4 written)."""
        return [s.index for s in self.handed_over if s.state == EMPTY]


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _check_out(out: Path, store_dir: Path, replace: bool) -> None:
    """Refuse an OUT inside the store, or (unless ``replace``) holding an earlier export."""
    if _inside(out, store_dir):
        raise ExportError(f"{out}: is inside the dock store; export somewhere else")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: is a file, not a folder")
    why = not_an_export_folder(out)
    if why:
        raise ExportError(f"{out}: {why}; export into a folder of its own")
    earlier = earlier_export(out)
    if earlier and not replace:
        raise ExportError(
            f"{out}: holds an earlier export ({describe(earlier)}); export into an empty "
            "folder, or give --replace to remove the earlier export first"
        )


def _write_manifests(out: Path, records: list[HeldRecord], files: dict[str, bytes]) -> list[Path]:
    mdir = out / MANIFESTS_DIR
    mdir.mkdir(exist_ok=True)
    manifests = []
    for r in records:
        name = chain_file_name(r.seq, r.fields.record_type)
        data = files.get(f"{CHAIN_DIR}/{name}")
        if data is not None:
            write_atomic(mdir / name, data)
            manifests.append(mdir / name)
    return manifests


def _report_problems(report: Report) -> list[str]:
    problems = [
        f"{f.kind}: {f.detail}" + (f" [{f.file}]" if f.file else "") for f in report.findings
    ]
    if not report.ok and not problems:
        problems = [
            f"segment {s.segment_index}: {s.status} {s.detail}".rstrip()
            for s in report.segments
            if s.status != "authentic" or s.truncated
        ] or ["the recording did not verify (see the report)"]
    return problems


def _hand_over_all(
    by_index: list[HeldRecord],
    files: dict[str, bytes],
    out: Path,
    recording_id: str,
    agency_private_key: PrivateKey | None,
    problems: list[str],
    progress: Callable[[str], None] | None,
) -> list[SegmentOut]:
    """Each segment into ``out`` (``hand_over``); a segment with no frame keeps its stored
    copy in ``segments/``: it is the evidence that the segment was signed."""
    handed: list[SegmentOut] = []
    for k, r in enumerate(by_index, 1):
        name = _stored_name(r)
        blob = files.get(f"{SEGMENTS_DIR}/{name}")
        got = hand_over(
            r.fields.segment_index or 0,
            name,
            r.fields.raw,
            blob,
            out,
            recording_id,
            agency_private_key,
            problems,
        )
        if got.state == EMPTY and got.file is None and blob is not None:
            (out / SEGMENTS_DIR).mkdir(exist_ok=True)
            write_atomic(out / SEGMENTS_DIR / name, blob)
        handed.append(got)
        if progress:
            what = f"{got.state}: " if got.state in (EMPTY, MISSING) else ""
            progress(f"[{k}/{len(by_index)}] segment {got.index}: {what}{got.detail}")
    return handed


def export_recording(
    store_dir: Path,
    recording_id: str,
    out: Path,
    agency_private_key: PrivateKey | None,
    progress: Callable[[str], None] | None = None,
    *,
    device_id: str | None = None,
    replace: bool = False,
    zip_to: bool = False,
    trail: bytes | None = None,
    clock: Callable[[], int] = wall_clock_us,
    actor: str = "technician",
) -> ExportResult:
    """Export one recording from the dock store in ``store_dir`` into ``out``.

    The recording's chain records and stored segments are read from the store in the outbox
    layout and checked by crypto.verify (``out/report.json``); the records are written to
    ``out/manifests/``. With ``agency_private_key`` every segment is decrypted to
    ``out/<recording>_<idx:04d>.mp4`` (fragmented MP4: plays as it is); without it the
    encrypted stored segments are copied to ``out/segments/``. A segment without a frame is
    listed as empty (``report.json``'s ``export`` section), not written as an MP4.
    ``progress`` gets a line per step (per segment). ``ExportError`` when nothing can be
    exported (no store, no such recording, an id that is not one, ``out`` holding an earlier
    export and ``replace`` not given: with it, that export is removed first); a recording that
    does not verify is exported as far as it goes, with ``ok`` False and the reasons in
    ``problems``. ``actor``: who exports, as the custody entry ``exported`` names them (the
    console passes ``account:<name>``).
    """
    check_recording_id(recording_id)
    store_dir, out = Path(store_dir), Path(out)
    _check_out(out, store_dir, replace)
    store = open_store(store_dir)
    try:
        holdings, records = find_recording(store, recording_id, device_id)
        dev = holdings.device_id
        report, files = verify_recording(store, dev, records, agency_private_key, progress)
        papers = gather_papers(store, dev, records)
        papers.trail = trail_lines(trail, recording_id) if trail else b""
        papers.log = gather_log_papers(store, dev, [r.seq for r in records])
        segs = [r for r in records if r.is_segment]
        stored = [object_path(store, blob_key(dev, r.held.segment_id)) for r in segs]
        stored = [p for p in stored if p.exists()]
        decrypted = agency_private_key is not None
        log_export(store, dev, recording_id, decrypted, len(records), clock(), actor)
    finally:
        store.close()
    replaced = clear_earlier_export(out) if replace else []
    out.mkdir(parents=True, exist_ok=True)
    manifests = _write_manifests(out, records, files)
    problems = _report_problems(report)
    n0 = len(problems)
    by_index = sorted(segs, key=lambda r: (r.fields.segment_index or 0, r.seq))
    handed = _hand_over_all(
        by_index, files, out, recording_id, agency_private_key, problems, progress
    )
    write_papers(out, papers)
    extra = {"export": export_listing(out, handed), "dock_copies": report.to_json()}
    exhibit = finish_exhibit(out, papers, recording_id, extra)  # what `bwv verify` says
    problems = _report_problems(exhibit) + problems[n0:]  # and what did not decrypt
    ok = exhibit.ok and all(s.state != MISSING and s.whole for s in handed)
    report_json = exhibit.to_json() | extra
    report_path = out / REPORT_FILE
    zipped = zip_exhibit(out) if zip_to else None
    return ExportResult(
        recording_id=recording_id,
        device_id=dev,
        segments=[s.file for s in handed if s.state == WRITTEN and s.file is not None],
        stored=stored,
        manifests=manifests,
        report=report_json,
        ok=ok,
        report_path=report_path,
        encrypted=[s.file for s in handed if s.state in (COPIED, EMPTY) and s.file is not None],
        problems=problems,
        decrypted=agency_private_key is not None,
        handed_over=handed,
        replaced=replaced,
        zipped=zipped,
    )


def log_export(
    store: DirectoryStore,
    device_id: str,
    recording_id: str,
    decrypted: bool,
    records: int,
    now_us: int,
    actor: str = "technician",
) -> None:
    """A custody event (``exported``, a leaf of the dock's log like every custody entry):
    the footage left the dock, decrypted or not. Written before the files, so that an export
    cut short is still on record; the dock's next checkpoint covers it."""
    store.log(
        actor,
        "exported",
        now_us,
        device_id=device_id,
        detail={"recording_id": recording_id, "decrypted": decrypted, "records": records},
    )


# --------------------------------------------------------------------------- whole device


def export_device(store: DirectoryStore, device_id: str, out: Path) -> list[Path]:
    """Copy every record and segment the dock holds for ``device_id`` into ``out``."""
    out = Path(out)
    (out / CHAIN_DIR).mkdir(parents=True, exist_ok=True)
    (out / SEGMENTS_DIR).mkdir(exist_ok=True)
    verifier = ChainRecordVerifier()
    written = []
    for held in store.held_segments(device_id):
        with store.open_object(manifest_key(device_id, held.segment_id)) as f:
            line = f.read()
        fields = verifier.parse(line)
        path = out / CHAIN_DIR / chain_file_name(fields.seq, fields.record_type)
        path.write_bytes(line)
        written.append(path)
        if fields.record_type == "manifest":
            dst = out / SEGMENTS_DIR / _stored_name(HeldRecord(held, fields))
            with (
                store.open_object(blob_key(device_id, held.segment_id)) as src,
                open(dst, "wb") as f,
            ):
                shutil.copyfileobj(src, f, 1 << 20)
            written.append(dst)
    return written


def export_custody_log(store: DirectoryStore, path: Path, device_id: str | None = None) -> int:
    """Write the custody log (all of it, or the entries about ``device_id``) as JSON lines.
    A device's entries alone do not chain; the whole log does."""
    n = 0
    with open(path, "w") as f:
        for e in store.custody_log(limit=10**9):
            if device_id is None or e.device_id == device_id:
                f.write(json.dumps(asdict(e), sort_keys=True) + "\n")
                n += 1
    return n


__all__ = [
    "ENDED_EARLY",
    "FAILED",
    "GAP",
    "INCOMPLETE",
    "VERIFIED",
    "DeviceHoldings",
    "ExportError",
    "ExportResult",
    "RecordingSummary",
    "check_device_id",
    "check_recording_id",
    "device_holdings",
    "export_custody_log",
    "export_device",
    "export_recording",
    "find_recording",
    "open_store",
    "scan_recordings",
    "verify_recording",
]
