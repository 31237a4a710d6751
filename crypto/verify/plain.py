"""The plain room: a decrypted segment (a playable ``.mp4``: the init blob and the fragments
concatenated) checked against the plaintext hashes its signed manifest lists, chunk by chunk.

The MP4 is split at its top-level boxes: the init blob is everything before the first
``moof``, each fragment runs from one ``moof`` to the next (docs/evidence-format.md,
"Checking a decrypted segment"). No agency key is needed: the manifest signs each chunk's
plaintext SHA-256 as well as its ciphertext's.
"""

from __future__ import annotations

import struct
from typing import Any

from crypto.records import SignedRecord, sha256_hex
from crypto.verify.chunks import compare_chunks
from crypto.verify.inputs import PLAIN_EXT, basename
from crypto.verify.report import (
    ALTERED,
    AUTHENTIC,
    REORDERED,
    SUBSTITUTED,
    UNSIGNED,
    ChunkReport,
    SegmentReport,
    worst_status,
)
from crypto.verify.state import VerifierState


def top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the whole top-level boxes, up to the first incomplete one."""
    out: list[tuple[bytes, int, int]] = []
    pos, n = 0, len(data)
    while pos + 8 <= n:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > n:
                break
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        if size < header or pos + size > n:
            break
        out.append((kind, pos, size))
        pos += size
    return out


def split_mp4(data: bytes) -> tuple[list[bytes], int]:
    """The MP4's pieces (init, then one per ``moof``) and how many bytes follow its last
    whole box (a file cut inside a box)."""
    boxes = top_level_boxes(data)
    if not boxes:
        return [], len(data)
    end = boxes[-1][1] + boxes[-1][2]
    cuts = [off for kind, off, _ in boxes if kind == b"moof" and off > 0]
    bounds = [0, *cuts, end]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)], len(data) - end


def split_by_sizes(data: bytes, sizes: list[int]) -> list[bytes]:
    """The file cut where the signed chunk sizes say (what is left over: one more piece)."""
    pieces, pos = [], 0
    for n in sizes:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + n])
        pos += n
    if pos < len(data):
        pieces.append(data[pos:])
    return pieces


def _best_split(
    data: bytes, expected: list[dict[str, Any]], known: dict[str, str]
) -> tuple[list[bytes], int, list[ChunkReport]]:
    """Split at the MP4's boxes and at the signed sizes; keep the reading that finds more
    signed chunks (the boxes when equal: they show reordered fragments)."""
    boxes, torn = split_mp4(data)
    by_box = compare_chunks(boxes, expected, known, key="plain_sha256")
    sized = split_by_sizes(data, [c["plain_size"] for c in expected])
    by_size = compare_chunks(sized, expected, known, key="plain_sha256")

    def score(reports: list[ChunkReport]) -> int:
        return sum(c.status == AUTHENTIC for c in reports)

    if score(by_size) > score(by_box):
        return sized, 0, by_size
    return boxes, torn, by_box


def plain_name(stored_file: str) -> str:
    """The decrypted segment's file name for a stored segment's (``x.bwvseg`` -> ``x.mp4``)."""
    stem = stored_file[: -len(".bwvseg")] if stored_file.endswith(".bwvseg") else stored_file
    return stem + PLAIN_EXT


class PlainRoom(VerifierState):
    def _known_plain(self) -> dict[str, str]:
        known: dict[str, str] = {}
        self._plain_owner: dict[str, tuple[str, int]] = {}
        for _, rec in self.chain.values():
            if rec.type != "manifest":
                continue
            r = rec.record
            for c in r["chunks"]:
                if c["kind"] != "final":
                    self._plain_owner.setdefault(
                        c["plain_sha256"], (r["recording_id"], r["segment_index"])
                    )
                    known.setdefault(
                        c["plain_sha256"],
                        f"{r['recording_id']} segment {r['segment_index']} chunk {c['chunk']}",
                    )
        return known

    def _check_plain(self, rep: SegmentReport, m: SignedRecord) -> bool:
        """Check the manifest's segment as a decrypted ``.mp4``, if one is given under its
        name; False if none is."""
        r = m.record
        want = plain_name(r["file"])
        name = next((n for n in self.plain_files if basename(n) == want), None)
        if name is None:
            return False
        data = self.plain_files.pop(name)
        rep.file, rep.decrypted = name, True
        expected = [c for c in r["chunks"] if c["kind"] != "final"]
        pieces, torn, found = _best_split(data, expected, self._known_plain())
        finals = [
            ChunkReport(c["chunk"], None, "final", AUTHENTIC, "signed end (no bytes in the MP4)")
            for c in r["chunks"]
            if c["kind"] == "final"
        ]
        n = len(expected)
        rep.chunks = found[:n] + finals + found[n:]
        if torn:
            rep.chunks.append(
                ChunkReport(
                    None,
                    len(pieces),
                    "unknown",
                    ALTERED,
                    f"{torn} bytes: the file ends inside an MP4 box (cut short)",
                )
            )
        where = dict(recording_id=r["recording_id"], segment_index=r["segment_index"])
        bad = [c for c in rep.chunks if c.status != AUTHENTIC]
        if not bad:
            return True
        if self._holds_other(rep, r, name, pieces):
            return True
        statuses = {c.status for c in bad}
        rep.status = worst_status(statuses)
        for c in bad:
            label = f"fragment {c.chunk}" if c.chunk else "init" if c.chunk == 0 else "extra"
            pos = f" at position {c.position}" if c.chunk is None else ""
            self.find(
                c.status if c.status != "duplicated" else "duplicate",
                f"{label}{pos}: {c.status}{': ' + c.detail if c.detail else ''}",
                file=name,
                **where,
            )
        return True

    def _holds_other(
        self, rep: SegmentReport, r: dict[str, Any], name: str, pieces: list[bytes]
    ) -> bool:
        """The MP4 is, piece for piece, another segment a manifest here signs: one finding."""
        owners = {self._plain_owner.get(sha256_hex(p)) for p in pieces}
        if len(owners) != 1 or None in owners:
            return False
        rec_id, idx = owners.pop()  # type: ignore[misc]
        if (rec_id, idx) == (r["recording_id"], r["segment_index"]):
            return False  # its own pieces, out of order: lined up chunk by chunk instead
        rep.status = REORDERED if rec_id == r["recording_id"] else SUBSTITUTED
        self._mark_all(rep, rep.status, f"file holds {rec_id}/{idx}")
        self.find(
            rep.status,
            f"{name} holds segment {rec_id}/{idx}, not {r['recording_id']}/{r['segment_index']}",
            file=name,
            recording_id=r["recording_id"],
            segment_index=r["segment_index"],
        )
        return True

    def _leftover_plain(self) -> None:
        """Decrypted segments no manifest here names."""
        for name in self.plain_files:
            self.find(UNSIGNED, "an MP4 that no manifest here names", file=name)
