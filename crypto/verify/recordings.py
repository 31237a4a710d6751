"""The recordings room: per recording, its segments in order, its end record, and its
verdict (complete, ended_early, cut_short, incomplete)."""

from __future__ import annotations

from collections.abc import Mapping

from crypto.records import SignedRecord
from crypto.verify.report import AUTHENTIC, MISSING, REORDERED, RecordingReport, SegmentReport
from crypto.verify.state import VerifierState

MAX_MISSING_LISTED = 1000  # missing segments listed one by one, past the last one present


class RecordingRoom(VerifierState):
    def _recordings(
        self, manifests: Mapping[tuple[str, int], SignedRecord]
    ) -> list[RecordingReport]:
        ids = (
            {k[0] for k in manifests}
            | {r for _, rec in self.chain.values() if (r := rec.record.get("recording_id"))}
            | {s.recording_id for s in self.segments if s.recording_id is not None}
        )
        out = []
        for rec_id in sorted(ids):
            ms = sorted((m for k, m in manifests.items() if k[0] == rec_id), key=lambda m: m.seq)
            ends = sorted(
                (
                    rec
                    for _, rec in self.chain.values()
                    if rec.type == "end" and rec.record["recording_id"] == rec_id
                ),
                key=lambda e: e.seq,
            )
            self._missing_segments(rec_id, ends)
            self._signing_order(rec_id, ms)
            self._end_records(rec_id, ms, ends)
            out.append(self._verdict(rec_id, ms, ends))
        return out

    def _missing_segments(self, rec_id: str, ends: list[SignedRecord]) -> None:
        """Segments of the recording that nothing here names: neither manifest, file nor
        trail record, up to the count its end records give."""
        indices = sorted(
            {
                s.segment_index
                for s in self.segments
                if s.recording_id == rec_id and s.segment_index is not None
            }
        )
        want = max([*indices, *(e.record["segment_count"] - 1 for e in ends)], default=-1)
        listed = set(indices)
        for idx in range(min(want, max(indices, default=0) + MAX_MISSING_LISTED) + 1):
            if idx not in listed:
                self.segments.append(
                    SegmentReport.missing(
                        rec_id,
                        idx,
                        "neither manifest, file nor trail record of this segment is here",
                    )
                )
                self.find(
                    MISSING,
                    f"segment {rec_id}/{idx} is missing",
                    segment_index=idx,
                    recording_id=rec_id,
                )

    def _signing_order(self, rec_id: str, ms: list[SignedRecord]) -> None:
        """Manifests signed in segment order."""
        last_idx = -1
        for m in ms:
            if m.record["segment_index"] < last_idx:
                self.find(
                    REORDERED,
                    f"segment {m.record['segment_index']} was signed after segment {last_idx}",
                    seq=m.seq,
                    recording_id=rec_id,
                )
            last_idx = max(last_idx, m.record["segment_index"])

    def _end_records(self, rec_id: str, ms: list[SignedRecord], ends: list[SignedRecord]) -> None:
        """Each end record counts the manifests before it, and says why the recording ended."""
        for e in ends:
            er = e.record
            signed_before = sum(1 for m in ms if m.seq < e.seq)
            if er["segment_count"] != signed_before:
                self.find(
                    MISSING,
                    f"end record {e.seq} counts {er['segment_count']} "
                    f"segments, {signed_before} manifests precede it",
                    seq=e.seq,
                    recording_id=rec_id,
                )
            if er["reason"] != "stopped" or er["recovered"]:
                self.find(
                    "ended_early",
                    f"recording ended: {er['reason']}"
                    f"{' (found open after a restart)' if er['recovered'] else ''}",
                    seq=e.seq,
                    recording_id=rec_id,
                )

    def _verdict(
        self, rec_id: str, ms: list[SignedRecord], ends: list[SignedRecord]
    ) -> RecordingReport:
        last_end = ends[-1] if ends else None
        last_manifest = ms[-1] if ms else None
        if last_end is None or (last_manifest is not None and last_manifest.seq > last_end.seq):
            status = "cut_short"
            self.find(
                "cut_short",
                "no end-of-recording record after its last segment",
                recording_id=rec_id,
            )
        elif last_end.record["reason"] != "stopped" or last_end.record["recovered"]:
            status = "ended_early"
        else:
            status = "complete"
        segs = [s for s in self.segments if s.recording_id == rec_id]
        if status == "complete" and any(s.status != AUTHENTIC or s.truncated for s in segs):
            status = "incomplete"
        return RecordingReport(
            rec_id,
            status,
            last_end.record["reason"] if last_end else None,
            sorted({s.segment_index for s in segs if s.segment_index is not None}),
        )
