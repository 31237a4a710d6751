"""What no manifest covers: segments known only from the trail, stored files no record
names, set-aside bytes no manifest claims."""

from __future__ import annotations

from collections.abc import Mapping

from crypto.records import SignedRecord
from crypto.verify.chunks import compare_chunks
from crypto.verify.report import MISSING, SUBSTITUTED, UNSIGNED, ChunkReport, SegmentReport
from crypto.verify.state import VerifierState


class LeftoverRoom(VerifierState):
    def _trail_only_segments(self, manifests: Mapping[tuple[str, int], SignedRecord]) -> None:
        segs: dict[tuple[str, int], list[SignedRecord]] = {}
        for (rec_id, idx, _chunk), t in self.trail_by_chunk.items():
            if (rec_id, idx) not in manifests:
                segs.setdefault((rec_id, idx), []).append(t)
        for (rec_id, idx), recs in sorted(segs.items()):
            recs.sort(key=lambda t: t.record["chunk"])
            where = dict(recording_id=rec_id, segment_index=idx)
            cands = [
                f
                for f in self.segfiles
                if not f.used
                and f.parsed is not None
                and f.parsed.context.recording_id == rec_id
                and f.parsed.context.segment_index == idx
                and f.parsed.context.key_id == self.key_id
            ]
            expected = [t.record for t in recs]
            if not cands:
                rep = SegmentReport.missing(
                    rec_id,
                    idx,
                    "signed in the trail, but neither file nor manifest given",
                    [ChunkReport(e["chunk"], None, e["kind"], MISSING) for e in expected],
                )
                self.find(
                    MISSING,
                    f"segment {rec_id}/{idx} is in the trail but neither its "
                    "file nor its manifest is here",
                    **where,
                )
            else:
                f = cands[0]
                f.used = True
                assert f.parsed is not None
                rep = SegmentReport(
                    recording_id=rec_id,
                    segment_index=idx,
                    status=UNSIGNED,
                    file=f.name,
                    manifest=None,
                    manifest_seq=None,
                    truncated=True,
                    decrypted=None,
                    chunks=compare_chunks(f.parsed.chunks, expected, self.known_chunks),
                    detail="no manifest: the segment was never closed, or its manifest is missing",
                )
                self.find(
                    UNSIGNED,
                    f"segment {rec_id}/{idx} has no manifest (chunks are "
                    "checked against the trail only)",
                    file=f.name,
                    **where,
                )
            self.segments.append(rep)

    def _leftover_files(self) -> None:
        for f in self.segfiles:
            if f.used:
                continue
            m = self.manifest_by_stored.get(f.digest) if f.digest else None
            if m is not None:
                self.find(
                    "duplicate",
                    f"a copy of segment {m.record['recording_id']}/{m.record['segment_index']}",
                    file=f.name,
                )
                continue
            if f.parsed is None:
                self.find("malformed", f"unreadable stored segment: {f.error}", file=f.name)
                continue
            ctx = f.parsed.context
            if ctx.key_id != self.key_id or (self.device_id and ctx.device_id != self.device_id):
                self.other_signers.add((ctx.device_id, ctx.key_id))
                status, kind = SUBSTITUTED, SUBSTITUTED
                detail = f"a segment of device {ctx.device_id!r} key {ctx.key_id}"
            else:
                status, kind = UNSIGNED, UNSIGNED
                detail = "no manifest and no trail record covers this segment"
            self.segments.append(
                SegmentReport(
                    recording_id=ctx.recording_id,
                    segment_index=ctx.segment_index,
                    status=status,
                    file=f.name,
                    manifest=None,
                    manifest_seq=None,
                    truncated=True,
                    decrypted=None,
                    chunks=[],
                    detail=detail,
                )
            )
            self.find(
                kind,
                detail,
                file=f.name,
                recording_id=ctx.recording_id,
                segment_index=ctx.segment_index,
            )
        for name, _ in self.unsigned_files.values():
            self.find(UNSIGNED, "set-aside bytes that no manifest names", file=name)
