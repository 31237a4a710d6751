"""The trail room: the fragment-by-fragment signature trail, read and checked against the
manifests."""

from __future__ import annotations

from typing import Any

from crypto.records import SignedRecord
from crypto.trail import read_trail
from crypto.verify.report import (
    ALTERED,
    AUTHENTIC,
    EQUIVOCATION,
    REORDERED,
    TRAIL_MISSING,
    UNSIGNED,
    SegmentReport,
)
from crypto.verify.state import RECORD_REASON, VerifierState


class TrailRoom(VerifierState):
    def _read_trails(self, trails: list[tuple[str, bytes]]) -> None:
        self.trail_given = bool(trails)
        self.trail_name = trails[0][0] if trails else None
        if not trails and self.require_trail:
            self.find(
                "no_trail",
                "no signature trail among the files: what was signed "
                "fragment by fragment cannot be checked",
            )
        for name, data in trails:
            read = read_trail(data, self.pk, self.device_id)
            for first, last, bad in _runs(read.bad):
                lines = f"line {first}" if first == last else f"lines {first}-{last}"
                if bad.torn:
                    self.find(
                        "torn",
                        f"{lines} {'is' if first == last else 'are'} torn (a write cut "
                        f"short): {bad.detail}",
                        file=name,
                    )
                else:
                    self.find(
                        RECORD_REASON.get(bad.reason, ALTERED),
                        f"{lines}: {bad.reason}: {bad.detail}",
                        file=name,
                    )
            last = -1
            for rec, line_no in zip(read.records, read.line_nos, strict=True):
                self._note_device(rec)
                seq = rec.seq
                if seq <= last:
                    self.find(
                        REORDERED,
                        f"line {line_no}: trail seq {seq} comes after seq {last}",
                        file=name,
                        seq=seq,
                    )
                last = max(last, seq)
                if seq in self.trail:
                    same = self.trail[seq].line == rec.line
                    self.find(
                        "duplicate" if same else EQUIVOCATION,
                        f"line {line_no}: trail seq {seq} appears again"
                        + ("" if same else ", different: the device key signed two histories"),
                        file=name,
                        seq=seq,
                    )
                    continue
                self.trail[seq] = rec
                r = rec.record
                key = (r["recording_id"], r["segment_index"], r["chunk"])
                if key in self.trail_by_chunk:
                    self.find(
                        "duplicate",
                        f"line {line_no}: a second trail record for "
                        f"{key[0]} segment {key[1]} chunk {key[2]}",
                        file=name,
                        seq=seq,
                        recording_id=key[0],
                        segment_index=key[1],
                    )
                else:
                    self.trail_by_chunk[key] = rec
                self.known_chunks.setdefault(
                    r["cipher_sha256"], f"{key[0]} segment {key[1]} chunk {key[2]}"
                )
        name0 = trails[0][0] if trails else None
        self._check_sequence(self.trail, self.first_trail_seq, "trail", name0, TRAIL_MISSING)

    def _cross_check_trail(self, rep: SegmentReport, m: SignedRecord) -> None:
        if not self.trail_given:
            return
        r = m.record
        where = dict(recording_id=r["recording_id"], segment_index=r["segment_index"])
        for c in r["chunks"]:
            if c["trail_seq"] < self.first_trail_seq:
                continue
            t = self.trail.get(c["trail_seq"])
            mismatch = None
            if t is None:  # the manifest still signs the chunk: it stays authentic
                self.find(
                    TRAIL_MISSING,
                    f"chunk {c['chunk']}: trail record {c['trail_seq']} is not in the trail",
                    file=self.trail_name,
                    seq=c["trail_seq"],
                    **where,
                )
                continue
            else:
                tr = t.record
                same = (
                    tr["recording_id"],
                    tr["segment_index"],
                    tr["chunk"],
                    tr["kind"],
                    tr["plain_sha256"],
                    tr["cipher_sha256"],
                    tr["first_us"],
                    tr["end_us"],
                )
                want = (
                    r["recording_id"],
                    r["segment_index"],
                    c["chunk"],
                    c["kind"],
                    c["plain_sha256"],
                    c["cipher_sha256"],
                    c["first_us"],
                    c["end_us"],
                )
                if same != want:
                    mismatch = f"trail record {c['trail_seq']} says otherwise"
                elif c["chunk"] == 0 and (
                    tr["segment"] is None
                    or tr["segment"]["header_sha256"] != r["header_sha256"]
                    or tr["segment"]["start_us"] != r["start_us"]
                    or tr["segment"]["wall_start_us"] != r["wall_start_us"]
                ):
                    mismatch = "the trail's init record names another header or start"
            if mismatch:
                for cr in rep.chunks:
                    if cr.chunk == c["chunk"] and cr.status == AUTHENTIC:
                        cr.status, cr.detail = UNSIGNED, mismatch
                if rep.status == AUTHENTIC:
                    rep.status = UNSIGNED
                self.find(
                    UNSIGNED,
                    f"chunk {c['chunk']}: not signed in the trail as "
                    f"{rep.manifest} says: {mismatch}",
                    file=self.trail_name,
                    seq=c["trail_seq"],
                    **where,
                )


def _runs(bad: list[Any]) -> list[tuple[int, int, Any]]:
    """Consecutive bad trail lines with the same problem, as (first line, last line, one of
    them): one finding per cause, not one per line."""
    out: list[tuple[int, int, Any]] = []
    for b in bad:
        if out:
            first, last, prev = out[-1]
            same = (prev.torn, prev.reason, prev.detail) == (b.torn, b.reason, b.detail)
            if same and b.line_no == last + 1:
                out[-1] = (first, b.line_no, prev)
                continue
        out.append((b.line_no, b.line_no, b))
    return out
