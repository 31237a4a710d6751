"""The segments room: each manifest checked against its stored file, its set-aside bytes,
the trail and (with the agency key) its plaintext."""

from __future__ import annotations

from typing import Any

from crypto.digests import plain_digest_from
from crypto.records import SignedRecord, sha256_hex
from crypto.seal import LEN, SegmentContext, decrypt_segment, parse_chunks
from crypto.verify.chunks import compare_chunks
from crypto.verify.inputs import SegFile, basename, canonical_segment_name
from crypto.verify.plain import PlainRoom
from crypto.verify.report import (
    ALTERED,
    AUTHENTIC,
    DUPLICATED,
    MISSING,
    REORDERED,
    SUBSTITUTED,
    UNSIGNED,
    ChunkReport,
    SegmentReport,
    worst_status,
)
from crypto.verify.trail import TrailRoom


class SegmentRoom(TrailRoom, PlainRoom):
    def _check_manifest(self, m: SignedRecord) -> SegmentReport:
        r = m.record
        rec_id, idx = r["recording_id"], r["segment_index"]
        expected = r["chunks"]
        rep = SegmentReport(
            recording_id=rec_id,
            segment_index=idx,
            status=AUTHENTIC,
            file=None,
            manifest=self._chain_name(m),
            manifest_seq=m.seq,
            truncated=r["truncated"],
            decrypted=None,
        )
        where = dict(recording_id=rec_id, segment_index=idx)
        by_name = [f for f in self.segfiles if not f.partial and basename(f.name) == r["file"]]
        exact = self._stored_file(rep, r, by_name)
        if exact is not None:
            exact.used = True
            rep.file = exact.name
            rep.chunks = [
                ChunkReport(c["chunk"], c["chunk"], c["kind"], AUTHENTIC) for c in expected
            ]
            if exact.parsed is None or [sha256_hex(c) for c in exact.parsed.chunks] != [
                c["cipher_sha256"] for c in expected
            ]:  # the stored digest matches but the manifest's own chunk list does not
                self._mark_all(rep, ALTERED, "the manifest's chunk list does not match")
                self.find(
                    ALTERED,
                    "manifest inconsistent with its stored file",
                    file=rep.manifest,
                    **where,
                )
        else:
            target = by_name[0] if by_name else None
            if target is None and self._check_plain(rep, m):
                pass
            elif target is None:
                rep.status = MISSING
                rep.file = self.seg_prefix + r["file"]
                rep.chunks = [ChunkReport(c["chunk"], None, c["kind"], MISSING) for c in expected]
                self.find(MISSING, f"stored segment {r['file']} is missing", file=rep.file, **where)
            else:
                target.used = True
                rep.file = target.name
                self._compare_file(rep, m, target)
        self._unsigned_tail(rep, m)
        self._cross_check_trail(rep, m)
        if self.agency is not None and rep.status not in (MISSING,) and not rep.decrypted:
            f = next((x for x in self.segfiles if x.name == rep.file), None)
            if f is not None:
                self._decrypt(rep, m, f)
        if r["truncated"]:
            self.find(
                "truncated",
                f"segment {rec_id}/{idx} was cut short after chunk "
                f"{len(expected) - 1} (no final chunk"
                f"{', closed by recovery after a crash' if r['recovered'] else ''})",
                file=rep.file,
                **where,
            )
        return rep

    def _stored_file(
        self, rep: SegmentReport, r: dict[str, Any], by_name: list[SegFile]
    ) -> SegFile | None:
        """The stored file whose bytes are exactly the manifest's (by name first, else by
        hash alone: then a reordering, substitution or renaming is reported)."""
        rec_id, idx = r["recording_id"], r["segment_index"]
        by_hash = [
            f
            for f in self.segfiles
            if f.digest == r["stored_digest"] and len(f.data) == r["stored_size"]
        ]
        exact = next((f for f in by_name if f in by_hash), None)
        if exact is not None or not by_hash:
            return exact
        exact = by_hash[0]
        if not self.check_names:
            return exact
        where = dict(recording_id=rec_id, segment_index=idx, file=exact.name)
        canon = canonical_segment_name(exact.name)
        if canon is not None and canon != (rec_id, idx):
            rep.status = REORDERED if canon[0] == rec_id else SUBSTITUTED
            self.find(rep.status, f"segment {rec_id}/{idx} is stored as {exact.name}", **where)
        else:
            self.find(
                "misnamed",
                f"segment {rec_id}/{idx} ({r['file']}) is stored as {exact.name}",
                **where,
            )
        return exact

    def _compare_file(self, rep: SegmentReport, m: SignedRecord, f: SegFile) -> None:
        """The stored file under the manifest's name is not the one it signs: say how."""
        if self._holds_other_segment(rep, m, f):
            return
        chunks, header_sha, ctx, problem = self._stored_chunks(m, f)
        rep.chunks = compare_chunks(chunks, m.record["chunks"], self.known_chunks)
        if self._from_elsewhere(rep, m, f, ctx):
            return
        self._chunk_findings(rep, m, f, header_sha, problem)

    def _holds_other_segment(self, rep: SegmentReport, m: SignedRecord, f: SegFile) -> bool:
        """The file is, byte for byte, another segment some manifest here signs."""
        r = m.record
        other = self.manifest_by_stored.get(f.digest) if f.digest else None
        if other is None or other.seq == m.seq:
            return False
        o = other.record
        rep.status = REORDERED if o["recording_id"] == r["recording_id"] else SUBSTITUTED
        rep.chunks = [
            ChunkReport(
                c["chunk"],
                None,
                c["kind"],
                rep.status,
                f"file holds {o['recording_id']}/{o['segment_index']}",
            )
            for c in r["chunks"]
        ]
        self.find(
            rep.status,
            f"{f.name} holds segment {o['recording_id']}/"
            f"{o['segment_index']}, not {r['recording_id']}/{r['segment_index']}",
            file=f.name,
            recording_id=r["recording_id"],
            segment_index=r["segment_index"],
        )
        return True

    def _stored_chunks(
        self, m: SignedRecord, f: SegFile
    ) -> tuple[list[bytes], str, SegmentContext | None, str | None]:
        """(chunks, header hash, context, problem) of the stored file; with its header
        unreadable, the chunks are looked for where the manifest says they start."""
        if f.parsed is not None:
            p = f.parsed
            return p.chunks, p.header_sha256, p.context, p.problem
        r = m.record
        start = r["stored_size"] - sum(LEN.size + c["cipher_size"] for c in r["chunks"])
        start = max(0, min(start, len(f.data)))
        chunks, _, _, problem = parse_chunks(f.data, start)
        self.find(
            ALTERED,
            f"header unreadable: {f.error}",
            file=f.name,
            recording_id=r["recording_id"],
            segment_index=r["segment_index"],
        )
        return chunks, sha256_hex(f.data[:start]), None, problem

    def _from_elsewhere(
        self, rep: SegmentReport, m: SignedRecord, f: SegFile, ctx: SegmentContext | None
    ) -> bool:
        """No chunk is the signed one and the header names another device, recording or
        segment: the whole file was swapped."""
        r = m.record
        where = dict(recording_id=r["recording_id"], segment_index=r["segment_index"])
        if ctx is None or AUTHENTIC in {c.status for c in rep.chunks}:
            return False
        foreign = ctx.device_id != r["device_id"] or ctx.key_id != r["key_id"]
        if foreign or ctx.recording_id != r["recording_id"]:
            rep.status = SUBSTITUTED
            who = (
                f"device {ctx.device_id!r} key {ctx.key_id}"
                if foreign
                else f"recording {ctx.recording_id}"
            )
            self._mark_all(rep, SUBSTITUTED, f"from {who}")
            self.find(SUBSTITUTED, f"{f.name} is a segment from {who}", file=f.name, **where)
            return True
        if ctx.segment_index != r["segment_index"]:
            rep.status = REORDERED
            self._mark_all(rep, REORDERED, f"holds segment {ctx.segment_index}")
            self.find(
                REORDERED, f"{f.name} holds segment {ctx.segment_index}", file=f.name, **where
            )
            return True
        return False

    def _chunk_findings(
        self,
        rep: SegmentReport,
        m: SignedRecord,
        f: SegFile,
        header_sha: str,
        problem: str | None,
    ) -> None:
        """One finding per chunk that is not the signed one, and for the header."""
        r = m.record
        where = dict(recording_id=r["recording_id"], segment_index=r["segment_index"])
        statuses = {c.status for c in rep.chunks}
        rep.status = worst_status(statuses)
        bad = [c for c in rep.chunks if c.status != AUTHENTIC]
        if header_sha != r["header_sha256"]:
            self.find(
                ALTERED,
                "the header (context, sealed key, stream header) was altered",
                file=f.name,
                **where,
            )
        for c in bad:
            label = f"chunk {c.chunk}" if c.chunk is not None else f"position {c.position}"
            self.find(
                c.status if c.status != DUPLICATED else "duplicate",
                f"{label}: {c.status}{': ' + c.detail if c.detail else ''}",
                file=f.name,
                **where,
            )
        if problem:
            self.find(ALTERED, f"stored file: {problem}", file=f.name, **where)
        if not bad and header_sha == r["header_sha256"] and not problem:
            self.find(ALTERED, "stored file differs from the signed hash", file=f.name, **where)

    def _unsigned_tail(self, rep: SegmentReport, m: SignedRecord) -> None:
        tail = m.record["unsigned_tail"]
        if tail is None:
            return
        where = dict(recording_id=rep.recording_id, segment_index=rep.segment_index)
        pos0 = len(m.record["chunks"])
        got = self.unsigned_files.pop(tail["file"], None)
        if got is None:
            rep.chunks.append(
                ChunkReport(
                    None,
                    pos0,
                    "unknown",
                    UNSIGNED,
                    f"{tail['size']} bytes set aside in {tail['file']} (file not given)",
                )
            )
            self.find(
                MISSING,
                f"set-aside unsigned bytes {tail['file']} not given",
                file=self.seg_prefix + tail["file"],
                **where,
            )
        else:
            name, data = got
            chunks, _, end, _ = parse_chunks(data, 0)
            for i, c in enumerate(chunks):
                rep.chunks.append(
                    ChunkReport(
                        None,
                        pos0 + i,
                        "unknown",
                        UNSIGNED,
                        f"{len(c)} bytes, not signed (in {name})",
                    )
                )
            if end < len(data):
                rep.chunks.append(
                    ChunkReport(
                        None,
                        pos0 + len(chunks),
                        "unknown",
                        UNSIGNED,
                        f"{len(data) - end} bytes of a torn chunk (in {name})",
                    )
                )
            if sha256_hex(data) != tail["sha256"] or len(data) != tail["size"]:
                self.find(
                    ALTERED,
                    "set-aside bytes differ from what the manifest recorded",
                    file=name,
                    **where,
                )
        self.find(
            UNSIGNED,
            f"{tail['size']} bytes after the last signed chunk were never "
            f"signed (set aside in {tail['file']})",
            file=self.seg_prefix + tail["file"],
            **where,
        )

    def _decrypt(self, rep: SegmentReport, m: SignedRecord, f: SegFile) -> None:
        assert self.agency is not None
        r = m.record
        where = dict(recording_id=r["recording_id"], segment_index=r["segment_index"])
        d = decrypt_segment(f.data, self.agency)
        rep.decrypted = d.error is None
        if d.error is not None:
            self.find("undecryptable", d.error, file=f.name, **where)
        hashes = [sha256_hex(blob) for blob in d.blobs]
        for i, h in enumerate(hashes):
            if i < len(r["chunks"]) and h != r["chunks"][i]["plain_sha256"]:
                rep.decrypted = False
                self.find(
                    ALTERED,
                    f"chunk {i}: plaintext hash differs from the signed one",
                    file=f.name,
                    **where,
                )
        if d.error is None:
            if d.final == r["truncated"]:
                self.find(
                    ALTERED,
                    "FINAL tag does not agree with the manifest's truncated flag",
                    file=f.name,
                    **where,
                )
            if plain_digest_from(hashes) != r["plain_digest"]:
                self.find(
                    ALTERED, "plaintext hash differs from the signed one", file=f.name, **where
                )
