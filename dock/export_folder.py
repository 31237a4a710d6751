"""The folder ``bwv dock export`` writes: what an earlier export left in it, and what each
segment of the recording becomes there.

An export into a folder that holds an earlier one would mix the two (an earlier recording's
``segments/`` or MP4 files beside the new ones): ``earlier_export`` finds what an export
writes, so the command can refuse, or, asked to, ``clear_earlier_export`` removes exactly
that (nothing else in the folder) and says what it removed.

A segment the camera cut right after its first chunk (the MP4 header, no fragment: a crash or
a full disk at that moment) holds no frame. Decrypted it would be a 0-frame MP4 that players
and ffmpeg reject, so it is not written: it is listed as ``empty``, with why, in the export's
report and on the console. Its stored copy (signed evidence) is still exported with the
encrypted segments.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey

from capture.fmp4 import fragment_count
from crypto.digests import plain_digest_from
from crypto.durable import write_atomic
from crypto.evidence import SEGMENTS_DIR
from crypto.manifest import CHAIN_DIR
from crypto.records import sha256_hex
from crypto.seal import decrypt_segment
from crypto.trail import TRAIL_NAME
from crypto.verify.exhibit import LABEL, PAPERS

MANIFESTS_DIR = "manifests"
LOG_DIR = "log"  # the exhibit's log papers (dock/exhibit_log.py)
REPORT_FILE = "report.json"
MP4_EXT = ".mp4"
_EXPORTED_MP4 = re.compile(r"[A-Za-z0-9_-]{1,64}_[0-9]{4,}\.mp4")

# what became of a segment
WRITTEN = "written"  # decrypted to a playable MP4
COPIED = "copied"  # the stored (encrypted) copy, without the agency key
EMPTY = "empty"  # no frame in it: listed, no MP4 written
MISSING = "missing"  # the dock's stored copy is missing
UNREADABLE = "undecryptable"  # nothing of it decrypts

NO_FRAME = (
    "it holds no frame (the camera stopped it right after it began: a crash or a "
    "full disk at that moment)"
)
EMPTY_DETAIL = NO_FRAME + "; no MP4 written"


def not_an_export_folder(out: Path) -> str | None:
    """Why ``out`` must not be exported into (nor cleared): it is a camera's outbox or a dock
    store, whose ``segments/`` are evidence, not an earlier export."""
    out = Path(out)
    exhibit = (out / LABEL).is_file()  # an exhibit may hold the trail lines of its recording
    if ((out / TRAIL_NAME).exists() and not exhibit) or (out / CHAIN_DIR).is_dir():
        return "is a camera's outbox (it has a signature trail or chain/)"
    if (out / "index.sqlite3").exists():
        return "is a dock store"
    return None


def earlier_export(out: Path) -> list[Path]:
    """What an earlier export left in ``out`` (its report, chain records, encrypted segments,
    MP4 files named like exported segments); empty when there is none."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = []
    for entry in sorted(out.iterdir()):
        name = entry.name
        if name in (REPORT_FILE, MANIFESTS_DIR, SEGMENTS_DIR, TRAIL_NAME, LOG_DIR, *PAPERS) or (
            _EXPORTED_MP4.fullmatch(name) and entry.is_file()
        ):
            found.append(entry)
    return found


def clear_earlier_export(out: Path) -> list[str]:
    """Remove what ``earlier_export`` finds in ``out``; return its names (a folder's with a
    trailing ``/``)."""
    removed = []
    for entry in earlier_export(out):
        if entry.is_dir() and not entry.is_symlink():
            removed.append(entry.name + "/")
            shutil.rmtree(entry)
        else:
            removed.append(entry.name)
            entry.unlink()
    return removed


def describe(entries: list[Path] | list[str]) -> str:
    """``report.json, manifests/, segments/ and 3 MP4 files`` for a one-line message."""
    shown = [e if isinstance(e, str) else e.name + ("/" if e.is_dir() else "") for e in entries]
    names = [n for n in shown if not n.endswith(MP4_EXT)]
    mp4s = len(shown) - len(names)
    if mp4s:
        names.append(f"{mp4s} MP4 file{'s' if mp4s != 1 else ''}")
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


@dataclass
class SegmentOut:
    """What one segment of the recording became in the export."""

    index: int
    state: str  # WRITTEN, COPIED, EMPTY, MISSING, UNREADABLE
    file: Path | None = None  # the MP4 (WRITTEN) or the stored copy (COPIED, EMPTY)
    detail: str = ""
    whole: bool = True  # False: it did not decrypt whole (what did is written)

    def to_json(self, out: Path) -> dict[str, Any]:
        return {
            "segment_index": self.index,
            "state": self.state,
            "file": str(self.file.relative_to(out)) if self.file is not None else None,
            "detail": self.detail,
        }


def has_no_frame(manifest: dict[str, Any], plaintext: bytes | None = None) -> bool:
    """Whether a segment holds no frame: its signed manifest lists no fragment chunk, or its
    decrypted bytes are an MP4 header with no whole fragment after it."""
    chunks = manifest.get("chunks")
    if isinstance(chunks, list) and not any(
        isinstance(c, dict) and c.get("kind") == "fragment" for c in chunks
    ):
        return True
    return plaintext is not None and plaintext[4:8] == b"ftyp" and fragment_count(plaintext) == 0


def export_listing(out: Path, segments: list[SegmentOut]) -> dict[str, Any]:
    """The report's ``export`` section: what became of every segment, the empty ones named."""
    return {
        "segments": [s.to_json(out) for s in segments],
        "empty_segments": [s.index for s in segments if s.state == EMPTY],
    }


def hand_over(
    idx: int,
    stored_name: str,
    manifest: dict[str, Any],
    blob: bytes | None,
    out: Path,
    recording_id: str,
    agency_private_key: PrivateKey | None,
    problems: list[str],
) -> SegmentOut:
    """Segment ``idx`` into ``out``: decrypted to MP4 (with the agency key) or its stored copy
    as ``segments/<stored_name>``; a segment without a frame is listed as empty, never
    written as a 0-frame MP4. Why a segment does not decrypt whole goes to ``problems``."""
    if blob is None:
        return SegmentOut(idx, MISSING, detail="the dock's stored copy is missing")
    if agency_private_key is None:
        dst = out / SEGMENTS_DIR / stored_name
        dst.parent.mkdir(exist_ok=True)
        write_atomic(dst, blob)
        if has_no_frame(manifest):
            return SegmentOut(idx, EMPTY, dst, f"{NO_FRAME}; copied (encrypted) to {dst}")
        return SegmentOut(idx, COPIED, dst, f"copied (encrypted) to {dst}")
    d = decrypt_segment(blob, agency_private_key)
    plain = d.plaintext
    signed = manifest.get("plain_digest")
    whole = d.error is None and plain_digest_from(sha256_hex(b) for b in d.blobs) == signed
    if not whole:
        problems.append(
            f"segment {idx}: does not decrypt whole ({d.error or 'plaintext hash differs'})"
            + ("; kept what decrypted" if plain else "")
        )
    if not plain:
        return SegmentOut(idx, UNREADABLE, detail=f"nothing decrypts ({d.error})", whole=False)
    if has_no_frame(manifest, plain):
        return SegmentOut(idx, EMPTY, detail=EMPTY_DETAIL, whole=whole)
    dst = out / f"{recording_id}_{idx:04d}{MP4_EXT}"
    write_atomic(dst, plain, mode=0o600)  # footage in the clear: for its holder only
    return SegmentOut(
        idx,
        WRITTEN,
        dst,
        f"decrypted to {dst} ({len(plain)} bytes)" + ("" if whole else ", INCOMPLETE"),
        whole=whole,
    )
