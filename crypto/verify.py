"""Offline verifier: what in a set of files is authentic, missing, altered, reordered,
substituted or unsigned. Kept apart from signing: it needs only the device's public key
(and, to check plaintext too, the agency's private key).

Input: files by name (stored segments, set-aside ``.unsigned`` files, chain records, the
trail). Output: a ``Report`` with a status per segment and per chunk (chunk 0 is the init
blob, chunk k the k-th fragment, then the FINAL chunk), a status per recording, and the
findings; ``ok`` is True only when there is no finding at all: everything authentic and
complete. Bad input never raises: every malformed file is a finding.

Statuses (segments and chunks): ``authentic``, ``missing``, ``altered``, ``reordered``,
``substituted`` (from another device or another recording), ``unsigned`` (present, but no
signature covers it), ``duplicated`` (chunks only). Recordings: ``complete``,
``ended_early`` (ended for a reason other than "stopped", or by recovery after a crash),
``cut_short`` (no end record after its last segment), ``incomplete`` (a segment is not
authentic and whole).

Limits: records past the newest one given (the chain's tail) cannot be missed by anyone who
never saw them; the dock's receipts close that gap.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from nacl.public import PrivateKey

from crypto.identity import (
    IdentityError,
    key_id_of,
    load_agency_private_key,
    load_device_public_key,
)
from crypto.manifest import chain_file_name, parse_chain_file_name
from crypto.records import RecordError, SignedRecord, parse_line, sha256_hex, verify_line
from crypto.seal import (
    LEN,
    ParsedSegment,
    SealFormatError,
    decrypt_segment,
    parse_chunks,
    parse_segment,
)
from crypto.trail import read_trail

AUTHENTIC = "authentic"
MISSING = "missing"
ALTERED = "altered"
REORDERED = "reordered"
SUBSTITUTED = "substituted"
UNSIGNED = "unsigned"
DUPLICATED = "duplicated"

SEG_EXT = ".bwvseg"
PARTIAL_EXT = ".bwvseg.partial"
MAX_MISSING_LISTED = 1000  # missing segments listed one by one, past the last one present
_UNSIGNED_NAME = re.compile(r"\.unsigned(\.\d+)?\Z")
_RECORD_REASON = {
    "malformed": ALTERED,
    "schema": ALTERED,
    "bad_signature": ALTERED,
    "foreign": SUBSTITUTED,
}


@dataclass
class Finding:
    kind: str  # altered, substituted, reordered, missing, unsigned, duplicate, gap,
    #            chain_break, torn, truncated, cut_short, ended_early, misnamed, malformed,
    #            unrecognized, no_trail, undecryptable
    detail: str
    file: str | None = None
    recording_id: str | None = None
    segment_index: int | None = None
    seq: int | None = None


@dataclass
class ChunkReport:
    chunk: int | None  # index in the manifest / trail (0 = init); None: not listed there
    position: int | None  # index in the stored file; None: not in it
    kind: str  # init | fragment | final | unknown
    status: str
    detail: str = ""


@dataclass
class SegmentReport:
    recording_id: str | None
    segment_index: int | None
    status: str
    file: str | None  # the stored file looked at
    manifest: str | None  # the manifest's file
    manifest_seq: int | None
    truncated: bool
    decrypted: bool | None  # None: no agency key given
    chunks: list[ChunkReport] = field(default_factory=list)
    detail: str = ""


@dataclass
class RecordingReport:
    recording_id: str
    status: str
    end_reason: str | None
    segments: list[int]


@dataclass
class Report:
    ok: bool
    device_id: str | None
    key_id: str
    segments: list[SegmentReport]
    recordings: list[RecordingReport]
    findings: list[Finding]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def non_authentic(self) -> list[SegmentReport]:
        return [s for s in self.segments if s.status != AUTHENTIC]


# -- inputs --------------------------------------------------------------------------------
@dataclass
class _SegFile:
    name: str
    data: bytes
    sha256: str
    parsed: ParsedSegment | None
    error: str | None
    partial: bool
    used: bool = False


def _basename(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _canonical_segment_name(name: str) -> tuple[str, int] | None:
    base = _basename(name)
    if not base.endswith(SEG_EXT):
        return None
    stem = base[: -len(SEG_EXT)]
    rec, _, idx = stem.rpartition("_")
    if not rec or not idx.isdigit() or len(idx) < 4:
        return None
    return rec, int(idx)


def _classify(name: str, data: bytes) -> str:
    base = _basename(name)
    if base.endswith(SEG_EXT):
        return "segment"
    if base.endswith(PARTIAL_EXT):
        return "partial"
    if _UNSIGNED_NAME.search(base):
        return "unsigned"
    if parse_chain_file_name(base) is not None:
        return "chain"
    if base.endswith(".jsonl"):
        return "trail"
    if data.startswith(b"BWVSEG"):
        return "segment"
    if b'"type":"trail"' in data[:4096]:
        return "trail"
    if b'"type":"manifest"' in data[:8192] or b'"type":"end"' in data[:4096]:
        return "chain"
    return "unknown"


def is_evidence(name: str, data: bytes) -> bool:
    """Whether a file is one the verifier can check (a stored segment, set-aside bytes, a
    chain record, the trail), by its name or its first bytes."""
    return _classify(name, data) != "unknown"


class _Verifier:
    def __init__(
        self,
        files: Mapping[str, bytes],
        device_public_key: bytes,
        agency_private_key: PrivateKey | None,
        device_id: str | None,
        first_chain_seq: int,
        first_trail_seq: int,
        check_names: bool,
        require_trail: bool,
    ) -> None:
        self.files = dict(sorted(files.items()))
        self.pk = bytes(device_public_key)
        self.key_id = key_id_of(self.pk)
        self.agency = agency_private_key
        self.device_id = device_id
        self.first_chain_seq = first_chain_seq
        self.first_trail_seq = first_trail_seq
        self.check_names = check_names
        self.require_trail = require_trail
        self.findings: list[Finding] = []
        self.segments: list[SegmentReport] = []
        # filled in as we go
        self.trail: dict[int, SignedRecord] = {}
        self.trail_by_chunk: dict[tuple[str, int, int], SignedRecord] = {}
        self.trail_given = False
        self.chain: dict[int, tuple[str, SignedRecord]] = {}
        self.segfiles: list[_SegFile] = []
        self.unsigned_files: dict[str, tuple[str, bytes]] = {}  # basename -> (name, data)
        self.known_chunks: dict[str, str] = {}  # cipher sha256 -> where it belongs
        self.manifest_by_stored: dict[str, SignedRecord] = {}
        self.devices_seen: set[str] = set()  # device ids of the records the key signed
        self.other_signers: set[tuple[str, str]] = set()  # (device id, key id) of others

    def find(self, kind: str, detail: str, **kw: Any) -> None:
        self.findings.append(Finding(kind, detail, **kw))

    # -- run ---------------------------------------------------------------------------
    def run(self) -> Report:
        trails, chains = [], []
        for name, data in self.files.items():
            kind = _classify(name, data)
            if kind == "trail":
                trails.append((name, data))
            elif kind == "chain":
                chains.append((name, data))
            elif kind in ("segment", "partial"):
                self.segfiles.append(self._load_segment(name, data, kind == "partial"))
            elif kind == "unsigned":
                self.unsigned_files[_basename(name)] = (name, data)
            else:
                self.find("unrecognized", "not a file of the evidence outbox", file=name)
        self.seg_prefix = self._segment_prefix()
        self._read_trails(trails)
        self._read_chain(chains)
        manifests = self._manifests()
        for m in manifests.values():
            for c in m.record["chunks"]:
                self.known_chunks.setdefault(
                    c["cipher_sha256"],
                    f"{m.record['recording_id']} segment {m.record['segment_index']} "
                    f"chunk {c['chunk']}",
                )
            self.manifest_by_stored.setdefault(m.record["stored_sha256"], m)
        for m in manifests.values():
            self.segments.append(self._check_manifest(m))
        self._trail_only_segments(manifests)
        self._leftover_files()
        recordings = self._recordings(manifests)
        self.segments.sort(key=lambda s: (s.recording_id or "", s.segment_index or 0, s.file or ""))
        ok = (
            not self.findings
            and all(s.status == AUTHENTIC and not s.truncated for s in self.segments)
            and all(r.status == "complete" for r in recordings)
        )
        return Report(ok, self.device_id, self.key_id, self.segments, recordings, self.findings)

    def _segment_prefix(self) -> str:
        """How the caller names files in the segments directory ("segments/" in an outbox),
        to name the ones that are missing the same way."""
        for f in self.segfiles:
            if "/" in f.name:
                return f.name.rsplit("/", 1)[0] + "/"
        if any(n.startswith("chain/") or "/" in n for n in self.files):
            return "segments/"
        return ""

    # -- reading -----------------------------------------------------------------------
    def _load_segment(self, name: str, data: bytes, partial: bool) -> _SegFile:
        try:
            parsed: ParsedSegment | None = parse_segment(data)
            error = None
        except SealFormatError as exc:
            parsed, error = None, str(exc)
        return _SegFile(name, data, sha256_hex(data), parsed, error, partial)

    def _note_device(self, rec: SignedRecord) -> None:
        self.devices_seen.add(rec.record["device_id"])
        if self.device_id is None:
            self.device_id = rec.record["device_id"]

    def _note_other_signer(self, line: bytes) -> None:
        try:
            r, _ = parse_line(line)
            self.other_signers.add((str(r["device_id"]), str(r["key_id"])))
        except (RecordError, KeyError, TypeError):
            pass

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
                        _RECORD_REASON.get(bad.reason, ALTERED),
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
                    self.find(
                        "duplicate",
                        f"line {line_no}: trail seq {seq} appears again",
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
        self._check_sequence(self.trail, self.first_trail_seq, "trail", name0)

    def _check_sequence(
        self, recs: Mapping[int, Any], first: int, what: str, file: str | None
    ) -> None:
        if not recs:
            return
        seqs = sorted(recs)
        before = first - 1
        for s in seqs:
            if s > before + 1:
                a, b = before + 1, s - 1
                self.find(
                    "gap",
                    f"{what} records {a}..{b} are missing"
                    if a != b
                    else f"{what} record {a} is missing",
                    file=file,
                    seq=a,
                )
            before = max(before, s)
        for s in seqs:
            rec = recs[s] if isinstance(recs[s], SignedRecord) else recs[s][1]
            prev = recs.get(s - 1)
            if s == 0 and rec.record["prev_sha256"] is not None:
                self.find(
                    "chain_break",
                    f"{what} record 0 names a predecessor",
                    file=self._file_of(recs, s, file),
                    seq=s,
                )
            if prev is None:
                continue
            prev_rec = prev if isinstance(prev, SignedRecord) else prev[1]
            if rec.record["prev_sha256"] != prev_rec.sha256:
                self.find(
                    "chain_break",
                    f"{what} record {s} does not name record {s - 1} as its predecessor",
                    file=self._file_of(recs, s, file),
                    seq=s,
                )

    @staticmethod
    def _file_of(recs: Mapping[int, Any], s: int, default: str | None) -> str | None:
        v = recs[s]
        return v[0] if isinstance(v, tuple) else default

    def _read_chain(self, chains: list[tuple[str, bytes]]) -> None:
        for name, data in chains:
            try:
                rec = verify_line(data, self.pk, self.device_id, ("manifest", "end"))
            except RecordError as exc:
                if exc.reason == "foreign":
                    self._note_other_signer(data)
                self.find(
                    _RECORD_REASON.get(exc.reason, ALTERED),
                    f"chain record: {exc.reason}: {exc.detail}",
                    file=name,
                )
                continue
            self._note_device(rec)
            seq = rec.seq
            if self.check_names and _basename(name) != chain_file_name(seq, rec.type):
                self.find(
                    "misnamed",
                    f"holds chain record {seq} ({chain_file_name(seq, rec.type)})",
                    file=name,
                    seq=seq,
                )
            if seq in self.chain:
                other = self.chain[seq][0]
                same = self.chain[seq][1].line == rec.line
                self.find(
                    "duplicate",
                    f"chain record {seq} appears again (also in {other}"
                    f"{', identical' if same else ', different content'})",
                    file=name,
                    seq=seq,
                )
                continue
            self.chain[seq] = (name, rec)
        self._check_sequence(self.chain, self.first_chain_seq, "chain", None)

    def _manifests(self) -> dict[tuple[str, int], SignedRecord]:
        out: dict[tuple[str, int], SignedRecord] = {}
        for seq in sorted(self.chain):
            name, rec = self.chain[seq]
            if rec.type != "manifest":
                continue
            key = (rec.record["recording_id"], rec.record["segment_index"])
            if key in out:
                self.find(
                    "duplicate",
                    f"a second manifest for {key[0]} segment {key[1]} "
                    f"(seq {seq}, first is seq {out[key].seq})",
                    file=name,
                    seq=seq,
                    recording_id=key[0],
                    segment_index=key[1],
                )
                continue
            out[key] = rec
        return out

    # -- one manifest ------------------------------------------------------------------
    def _chain_name(self, rec: SignedRecord) -> str:
        return self.chain[rec.seq][0]

    def _check_manifest(self, m: SignedRecord) -> SegmentReport:
        r = m.record
        rec_id, idx = r["recording_id"], r["segment_index"]
        expected = r["chunks"]
        rep = SegmentReport(
            rec_id, idx, AUTHENTIC, None, self._chain_name(m), m.seq, r["truncated"], None
        )
        where = dict(recording_id=rec_id, segment_index=idx)
        by_name = [f for f in self.segfiles if not f.partial and _basename(f.name) == r["file"]]
        by_hash = [
            f
            for f in self.segfiles
            if f.sha256 == r["stored_sha256"] and len(f.data) == r["stored_size"]
        ]
        exact = next((f for f in by_name if f in by_hash), None)
        if exact is None and by_hash:
            exact = by_hash[0]
            canon = _canonical_segment_name(exact.name)
            if canon is not None and canon != (rec_id, idx) and self.check_names:
                rep.status = REORDERED if canon[0] == rec_id else SUBSTITUTED
                self.find(
                    rep.status,
                    f"segment {rec_id}/{idx} is stored as {exact.name}",
                    file=exact.name,
                    **where,
                )
            elif self.check_names:
                self.find(
                    "misnamed",
                    f"segment {rec_id}/{idx} ({r['file']}) is stored as {exact.name}",
                    file=exact.name,
                    **where,
                )
        if exact is not None:
            exact.used = True
            rep.file = exact.name
            rep.chunks = [
                ChunkReport(c["chunk"], c["chunk"], c["kind"], AUTHENTIC) for c in expected
            ]
            if exact.parsed is None or [sha256_hex(c) for c in exact.parsed.chunks] != [
                c["cipher_sha256"] for c in expected
            ]:  # the stored hash matches but the manifest's own chunk list does not
                self._mark_all(rep, ALTERED, "the manifest's chunk list does not match")
                self.find(
                    ALTERED,
                    "manifest inconsistent with its stored file",
                    file=rep.manifest,
                    **where,
                )
        else:
            target = by_name[0] if by_name else None
            if target is None:
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
        if self.agency is not None and rep.status not in (MISSING,):
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

    @staticmethod
    def _mark_all(rep: SegmentReport, status: str, detail: str) -> None:
        rep.status = status
        for c in rep.chunks:
            c.status, c.detail = status, detail

    def _compare_file(self, rep: SegmentReport, m: SignedRecord, f: _SegFile) -> None:
        r = m.record
        where = dict(recording_id=r["recording_id"], segment_index=r["segment_index"])
        other = self.manifest_by_stored.get(f.sha256)
        if other is not None and other.seq != m.seq:
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
                **where,
            )
            return
        if f.parsed is not None:
            chunks, header_sha, ctx = f.parsed.chunks, f.parsed.header_sha256, f.parsed.context
            problem = f.parsed.problem
        else:  # header unreadable: find the chunks where the manifest says they start
            start = r["stored_size"] - sum(LEN.size + c["cipher_size"] for c in r["chunks"])
            start = max(0, min(start, len(f.data)))
            chunks, _, _, problem = parse_chunks(f.data, start)
            header_sha, ctx = sha256_hex(f.data[:start]), None
            self.find(ALTERED, f"header unreadable: {f.error}", file=f.name, **where)
        rep.chunks = _compare_chunks(chunks, r["chunks"], self.known_chunks)
        statuses = {c.status for c in rep.chunks}
        foreign = ctx is not None and (ctx.device_id != r["device_id"] or ctx.key_id != r["key_id"])
        if (
            AUTHENTIC not in statuses
            and ctx is not None
            and (foreign or ctx.recording_id != r["recording_id"])
        ):
            rep.status = SUBSTITUTED
            who = (
                f"device {ctx.device_id!r} key {ctx.key_id}"
                if foreign
                else f"recording {ctx.recording_id}"
            )
            self._mark_all(rep, SUBSTITUTED, f"from {who}")
            self.find(SUBSTITUTED, f"{f.name} is a segment from {who}", file=f.name, **where)
            return
        if (
            AUTHENTIC not in statuses
            and ctx is not None
            and (ctx.segment_index != r["segment_index"])
        ):
            rep.status = REORDERED
            self._mark_all(rep, REORDERED, f"holds segment {ctx.segment_index}")
            self.find(
                REORDERED, f"{f.name} holds segment {ctx.segment_index}", file=f.name, **where
            )
            return
        rep.status = (
            SUBSTITUTED
            if SUBSTITUTED in statuses
            else REORDERED
            if REORDERED in statuses
            else ALTERED
        )
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
            if t is None:
                mismatch = f"trail record {c['trail_seq']} is missing"
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

    def _decrypt(self, rep: SegmentReport, m: SignedRecord, f: _SegFile) -> None:
        assert self.agency is not None
        r = m.record
        where = dict(recording_id=r["recording_id"], segment_index=r["segment_index"])
        d = decrypt_segment(f.data, self.agency)
        rep.decrypted = d.error is None
        if d.error is not None:
            self.find("undecryptable", d.error, file=f.name, **where)
        for i, blob in enumerate(d.blobs):
            if i < len(r["chunks"]) and sha256_hex(blob) != r["chunks"][i]["plain_sha256"]:
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
            plain = d.plaintext
            if r["plain_sha256"] is not None and sha256_hex(plain) != r["plain_sha256"]:
                self.find(
                    ALTERED, "plaintext hash differs from the signed one", file=f.name, **where
                )

    # -- what no manifest covers -------------------------------------------------------
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
                rep = SegmentReport(
                    rec_id,
                    idx,
                    MISSING,
                    None,
                    None,
                    None,
                    True,
                    None,
                    [ChunkReport(e["chunk"], None, e["kind"], MISSING) for e in expected],
                    "signed in the trail, but neither file nor manifest given",
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
                    rec_id,
                    idx,
                    UNSIGNED,
                    f.name,
                    None,
                    None,
                    True,
                    None,
                    _compare_chunks(f.parsed.chunks, expected, self.known_chunks),
                    "no manifest: the segment was never closed, or its manifest is missing",
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
            m = self.manifest_by_stored.get(f.sha256)
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
                    ctx.recording_id,
                    ctx.segment_index,
                    status,
                    f.name,
                    None,
                    None,
                    True,
                    None,
                    [],
                    detail,
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

    # -- recordings --------------------------------------------------------------------
    def _recordings(
        self, manifests: Mapping[tuple[str, int], SignedRecord]
    ) -> list[RecordingReport]:
        ids = (
            {k[0] for k in manifests}
            | {rec.record["recording_id"] for _, rec in self.chain.values()}
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
            where = dict(recording_id=rec_id)
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
                        SegmentReport(
                            rec_id,
                            idx,
                            MISSING,
                            None,
                            None,
                            None,
                            True,
                            None,
                            [],
                            "neither manifest, file nor trail record of this segment is here",
                        )
                    )
                    self.find(
                        MISSING, f"segment {rec_id}/{idx} is missing", segment_index=idx, **where
                    )
            last_idx = -1
            for m in ms:
                if m.record["segment_index"] < last_idx:
                    self.find(
                        REORDERED,
                        f"segment {m.record['segment_index']} was signed after segment {last_idx}",
                        seq=m.seq,
                        **where,
                    )
                last_idx = max(last_idx, m.record["segment_index"])
            for e in ends:
                er = e.record
                signed_before = sum(1 for m in ms if m.seq < e.seq)
                if er["segment_count"] != signed_before:
                    self.find(
                        MISSING,
                        f"end record {e.seq} counts {er['segment_count']} "
                        f"segments, {signed_before} manifests precede it",
                        seq=e.seq,
                        **where,
                    )
                if er["reason"] != "stopped" or er["recovered"]:
                    self.find(
                        "ended_early",
                        f"recording ended: {er['reason']}"
                        f"{' (found open after a restart)' if er['recovered'] else ''}",
                        seq=e.seq,
                        **where,
                    )
            last_end = ends[-1] if ends else None
            last_manifest = ms[-1] if ms else None
            if last_end is None or (last_manifest is not None and last_manifest.seq > last_end.seq):
                status = "cut_short"
                self.find("cut_short", "no end-of-recording record after its last segment", **where)
            elif last_end.record["reason"] != "stopped" or last_end.record["recovered"]:
                status = "ended_early"
            else:
                status = "complete"
            segs = [s for s in self.segments if s.recording_id == rec_id]
            if status == "complete" and any(s.status != AUTHENTIC or s.truncated for s in segs):
                status = "incomplete"
            out.append(
                RecordingReport(
                    rec_id,
                    status,
                    last_end.record["reason"] if last_end else None,
                    sorted({s.segment_index for s in segs if s.segment_index is not None}),
                )
            )
        return out


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


def _lis(seq: list[int]) -> set[int]:
    """Indices (into ``seq``) of one longest strictly increasing subsequence."""
    import bisect

    tails: list[int] = []  # seq values
    tails_at: list[int] = []  # their indices
    back = [-1] * len(seq)
    for i, v in enumerate(seq):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tails_at.append(i)
        else:
            tails[k] = v
            tails_at[k] = i
        back[i] = tails_at[k - 1] if k else -1
    out: set[int] = set()
    i = tails_at[-1] if tails_at else -1
    while i >= 0:
        out.add(i)
        i = back[i]
    return out


def _compare_chunks(
    chunks: list[bytes], expected: list[dict[str, Any]], known: Mapping[str, str]
) -> list[ChunkReport]:
    """Line up the chunks found with the signed list: authentic, reordered, duplicated,
    missing, altered, substituted (known from elsewhere) or unsigned (extra)."""
    hashes = [sha256_hex(c) for c in chunks]
    index = {e["cipher_sha256"]: j for j, e in enumerate(expected)}
    first_at: dict[int, int] = {}
    dups: list[int] = []
    pairs: list[tuple[int, int]] = []
    for i, h in enumerate(hashes):
        j = index.get(h)
        if j is None:
            continue
        if j in first_at:
            dups.append(i)
        else:
            first_at[j] = i
            pairs.append((i, j))
    in_order = _lis([j for _, j in pairs])
    reports: dict[int, ChunkReport] = {}
    for n, (i, j) in enumerate(pairs):
        status = AUTHENTIC if n in in_order else REORDERED
        detail = "" if i == j or status == REORDERED else f"at position {i}"
        if status == REORDERED:
            detail = f"found at position {i}"
        reports[j] = ChunkReport(j, i, expected[j]["kind"], status, detail)
    used = {i for i, _ in pairs} | set(dups)
    free = [i for i in range(len(chunks)) if i not in used]
    extras: list[ChunkReport] = []
    for j, e in enumerate(expected):
        if j in reports:
            continue
        if j in free:
            free.remove(j)
            where = known.get(hashes[j])
            if where is not None:
                reports[j] = ChunkReport(j, j, e["kind"], SUBSTITUTED, f"is {where}")
            else:
                reports[j] = ChunkReport(j, j, e["kind"], ALTERED)
        else:
            reports[j] = ChunkReport(j, None, e["kind"], MISSING)
    for i in free:
        where = known.get(hashes[i])
        if where is not None:
            extras.append(ChunkReport(None, i, "unknown", SUBSTITUTED, f"is {where}"))
        else:
            extras.append(ChunkReport(None, i, "unknown", UNSIGNED, "not in the signed list"))
    for i in dups:
        extras.append(
            ChunkReport(None, i, "unknown", DUPLICATED, f"a copy of chunk {index[hashes[i]]}")
        )
    extras.sort(key=lambda c: c.position or 0)
    return [reports[j] for j in range(len(expected))] + extras


# -- entry points ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordCheck:
    """One chain record checked on its own (what a dock does as records arrive)."""

    ok: bool
    problems: tuple[str, ...]
    record: dict[str, Any] | None
    sha256: str | None  # of the record's file: what the next record names as prev_sha256
    gap: bool  # the predecessor was not given, and this is not record 0


def check_chain_record(
    line: bytes,
    device_public_key: bytes,
    previous_sha256: str | None,
    stored: bytes | BinaryIO | None = None,
    device_id: str | None = None,
) -> RecordCheck:
    """Check a manifest or end record: signature, device, the link to the previous record
    (``previous_sha256``: the SHA-256 of the previous record's file, if held) and, for a
    manifest, that ``stored`` (bytes or a binary file, read to its end) is what it signs."""
    try:
        rec = verify_line(bytes(line), device_public_key, device_id, ("manifest", "end"))
    except RecordError as exc:
        return RecordCheck(False, (f"{exc.reason}: {exc.detail}",), None, None, False)
    r = rec.record
    problems = []
    gap = False
    if previous_sha256 is not None:
        if r["prev_sha256"] != previous_sha256:
            problems.append(
                f"chain break: record {r['seq']} does not name the given previous record"
            )
    elif r["seq"] == 0:
        if r["prev_sha256"] is not None:
            problems.append("record 0 names a predecessor")
    else:
        gap = True
    if r["type"] == "manifest":
        if stored is None:
            problems.append("the stored segment was not given")
        else:
            h = hashlib.sha256()
            n = 0
            if isinstance(stored, bytes | bytearray | memoryview):
                h.update(stored)
                n = len(stored)
            else:
                while block := stored.read(1 << 20):
                    h.update(block)
                    n += len(block)
            if h.hexdigest() != r["stored_sha256"] or n != r["stored_size"]:
                problems.append("the stored segment is not the one the manifest signs")
    return RecordCheck(not problems, tuple(problems), r, rec.sha256, gap)


def verify(
    files: Mapping[str, bytes],
    device_public_key: bytes,
    agency_private_key: PrivateKey | bytes | None = None,
    *,
    device_id: str | None = None,
    first_chain_seq: int = 0,
    first_trail_seq: int = 0,
    check_names: bool = True,
    require_trail: bool = True,
) -> Report:
    """Verify files given as ``{name: bytes}`` (names relative to the outbox)."""
    agency = agency_private_key
    if agency is not None and not isinstance(agency, PrivateKey):
        agency = PrivateKey(bytes(agency))

    def run(dev: str | None) -> tuple[Report, _Verifier]:
        v = _Verifier(
            files,
            device_public_key,
            agency,
            dev,
            first_chain_seq,
            first_trail_seq,
            check_names,
            require_trail,
        )
        return v.run(), v

    report, loose = run(None)
    seen = loose.devices_seen
    damaged = any(f.kind in (ALTERED, "torn", "malformed") for f in report.findings)
    if not seen and loose.other_signers and not damaged:  # the wrong key: one cause
        return _signed_by_others(report, loose.other_signers)
    if device_id is None or seen == {device_id}:
        return report
    if seen and device_id not in seen:  # one cause, one finding (not one per record)
        names = ", ".join(repr(d) for d in sorted(seen))
        report.findings.insert(
            0,
            Finding(
                SUBSTITUTED,
                f"signed as device {names} (key {report.key_id}), not as device "
                f"{device_id!r}: another device's evidence, or the wrong --device-id",
            ),
        )
        report.ok = False
        return report
    return run(device_id)[0]  # some records of the device asked for, some of another


def _signed_by_others(report: Report, signers: set[tuple[str, str]]) -> Report:
    """Nothing is signed by the key given: every other finding follows from that one."""
    who = ", ".join(f"device {d!r} key {k}" for d, k in sorted(signers))
    report.findings = [
        Finding(
            SUBSTITUTED,
            f"nothing here is signed by the key given ({report.key_id}): it is signed by "
            f"{who}; the wrong --device-pub, or another device's evidence",
        )
    ]
    report.recordings = []  # none can be judged without its device's key
    report.ok = False
    return report


def read_outbox(outbox: Path) -> dict[str, bytes]:
    """The outbox's files by relative name (temp files left by an atomic write skipped)."""
    outbox = Path(outbox)
    return {
        p.relative_to(outbox).as_posix(): p.read_bytes()
        for p in sorted(outbox.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


def verify_outbox(
    outbox: Path,
    device_public_key: bytes,
    agency_private_key: PrivateKey | bytes | None = None,
    **kw: Any,
) -> Report:
    return verify(read_outbox(outbox), device_public_key, agency_private_key, **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m crypto.verify", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("outbox", type=Path, help="directory with segments/, chain/, trail.jsonl")
    ap.add_argument("--device-pub", type=Path, required=True, help="device public key file")
    ap.add_argument("--agency-key", type=Path, help="agency X25519 private key (optional)")
    ap.add_argument("--device-id", help="expected device id")
    args = ap.parse_args(argv)
    try:
        pk = load_device_public_key(args.device_pub)
        sk = load_agency_private_key(args.agency_key) if args.agency_key else None
    except IdentityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = verify_outbox(args.outbox, pk, sk, device_id=args.device_id)
    json.dump(report.to_json(), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
