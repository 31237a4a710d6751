"""The signature trail: one append-only file per device, one signed record per chunk written.

Each record (crypto/FORMAT.md, "Trail record") names the device, the key, the recording,
the segment, the chunk (0 = init, then one per fragment, then the FINAL chunk), a
device-wide sequence number, the SHA-256 of the chunk's plaintext and of its ciphertext, and
the hash of the previous trail line. A record is appended and fsync'd right after its chunk,
before ``write_fragment`` returns, so a power cut leaves at most one chunk unsigned.

A torn last line (a power cut mid-append) is tolerated: readers report it, and the writer
ends it with a newline before appending, so the file stays append-only (nothing is cut).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from crypto.durable import append_durable, fsync_dir
from crypto.records import (
    VERSION,
    RecordError,
    SignedRecord,
    Signer,
    parse_line,
    sign_record,
    verify_line,
)

TRAIL_NAME = "trail.jsonl"
BLOCK = 1 << 16


@dataclass(frozen=True)
class BadLine:
    """A trail line that is not a valid record of this device."""

    line_no: int  # 1-based
    offset: int
    reason: str  # RecordError reason: malformed | schema | foreign | bad_signature
    detail: str
    torn: bool  # cut short by a power cut (later closed with a newline, or the last line)


@dataclass
class TrailRead:
    records: list[SignedRecord] = field(default_factory=list)
    line_nos: list[int] = field(default_factory=list)  # of each record, 1-based
    bad: list[BadLine] = field(default_factory=list)


def split_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, line with its newline) for each line; a last line may lack its newline."""
    pos = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        end = n if nl < 0 else nl + 1
        yield pos, data[pos:end]
        pos = end


def read_trail(data: bytes, public_key: bytes, device_id: str | None = None) -> TrailRead:
    """Every line of a trail, checked; never raises for bad content."""
    out = TrailRead()
    for no, (offset, line) in enumerate(split_lines(data), start=1):
        try:
            rec = verify_line(line, public_key, device_id, expect_type="trail")
        except RecordError as exc:
            out.bad.append(BadLine(no, offset, exc.reason, exc.detail, exc.reason == "torn"))
            continue
        out.records.append(rec)
        out.line_nos.append(no)
    return out


def iter_lines_reverse(f: BinaryIO, block: int = BLOCK) -> Iterator[bytes]:
    """The lines of ``f`` from the last to the first (each with its newline, if it had one)."""
    end = f.seek(0, os.SEEK_END)
    buf = b""
    pos = end
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        # everything after the first newline in buf is made of whole lines
        cut = buf.find(b"\n")
        if cut < 0:
            continue
        head, rest = buf[: cut + 1], buf[cut + 1 :]
        for line in reversed(list(_lines(rest))):
            yield line
        buf = head
    for line in reversed(list(_lines(buf))):
        yield line


def _lines(data: bytes) -> Iterator[bytes]:
    for _, line in split_lines(data):
        yield line


class TrailWriter:
    """Appends signed trail records to ``path`` (created if missing), durably."""

    def __init__(self, path: Path, signer: Signer, public_key: bytes) -> None:
        self.path = Path(path)
        self.signer = signer
        self.public_key = public_key
        self.repaired_torn_line = False
        created = not self.path.exists()
        self._f: BinaryIO = open(self.path, "a+b")  # noqa: SIM115 - held for appending
        if created:
            fsync_dir(self.path.parent)
        size = self._f.seek(0, os.SEEK_END)
        if size:
            self._f.seek(size - 1)
            if self._f.read(1) != b"\n":
                append_durable(self._f, b"\n")  # close the torn line; never cut the file
                self.repaired_torn_line = True
        last = self._last_valid()
        self.next_seq = 0 if last is None else last.seq + 1
        self.prev_sha256: str | None = None if last is None else last.sha256

    def _valid(self, line: bytes) -> SignedRecord | None:
        try:
            return verify_line(line, self.public_key, self.signer.device_id, "trail")
        except RecordError:
            return None

    def _last_valid(self) -> SignedRecord | None:
        for line in iter_lines_reverse(self._f):
            rec = self._valid(line)
            if rec is not None:
                return rec
        return None

    def append(self, fields: dict[str, Any]) -> SignedRecord:
        """Sign ``fields`` (recording_id .. segment) as the next record and append it."""
        record = {
            "type": "trail",
            "v": VERSION,
            "suite": self.signer.suite,
            "device_id": self.signer.device_id,
            "key_id": self.signer.key_id,
            "seq": self.next_seq,
            "prev_sha256": self.prev_sha256,
            **fields,
        }
        signed = sign_record(self.signer, record)
        append_durable(self._f, signed.line)
        self.next_seq += 1
        self.prev_sha256 = signed.sha256
        return signed

    def records_for_segment(self, recording_id: str, segment_index: int) -> list[SignedRecord]:
        """This device's valid records of one segment, in chunk order (scans from the end,
        stops at the segment's init record)."""
        found: dict[int, SignedRecord] = {}
        for line in iter_lines_reverse(self._f):
            try:
                r, _ = parse_line(line)  # cheap look first; verify only this segment's lines
            except RecordError:
                continue
            if r.get("recording_id") != recording_id or r.get("segment_index") != segment_index:
                continue
            rec = self._valid(line)
            if rec is None or not isinstance(rec.record["chunk"], int):
                continue
            r = rec.record
            found.setdefault(r["chunk"], rec)  # the newest record wins if repeated
            if r["chunk"] == 0:
                break
        self._f.seek(0, os.SEEK_END)
        return [found[k] for k in sorted(found)]

    def close(self) -> None:
        self._f.close()
