"""What the verifier's rooms share: its inputs, what it has read so far, its findings, and
the check of a numbered, hash-linked sequence of signed records (the chain, the trail)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.public import PrivateKey

from crypto.identity import key_id_of
from crypto.records import RecordError, SignedRecord, parse_line
from crypto.suites import suite_of
from crypto.verify.inputs import SegFile
from crypto.verify.report import ALTERED, SUBSTITUTED, Finding, SegmentReport

RECORD_REASON = {
    "malformed": ALTERED,
    "schema": ALTERED,
    "bad_signature": ALTERED,
    "foreign": SUBSTITUTED,
}


def _suite(public_key: bytes) -> str:
    """The key's suite; "unknown" for a key of neither form (nothing verifies under it)."""
    try:
        return suite_of(public_key)
    except ValueError:
        return "unknown"


class VerifierState:
    """The verifier's inputs and what it has read so far; each room (trail, chain, segments,
    leftovers, recordings) is a subclass that reads or adds to it."""

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
        self.suite = _suite(self.pk)
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
        self.segfiles: list[SegFile] = []
        self.plain_files: dict[str, bytes] = {}  # decrypted segments (.mp4) by name
        self.unsigned_files: dict[str, tuple[str, bytes]] = {}  # basename -> (name, data)
        self.known_chunks: dict[str, str] = {}  # cipher sha256 -> where it belongs
        self.manifest_by_stored: dict[str, SignedRecord] = {}
        self.devices_seen: set[str] = set()  # device ids of the records the key signed
        self.other_signers: set[tuple[str, str]] = set()  # (device id, key id) of others
        self.seg_prefix = ""  # how the caller names the segments directory ("segments/")
        self.trail_name: str | None = None  # the trail's file, once read

    def find(self, kind: str, detail: str, **kw: Any) -> None:
        self.findings.append(Finding(kind, detail, **kw))

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

    def _check_sequence(
        self,
        recs: Mapping[int, Any],
        first: int,
        what: str,
        file: str | None,
        gap_kind: str = "gap",
    ) -> None:
        if not recs:
            return
        seqs = sorted(recs)
        before = first - 1
        for s in seqs:
            if s > before + 1:
                a, b = before + 1, s - 1
                self.find(
                    gap_kind,
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

    def _chain_name(self, rec: SignedRecord) -> str:
        return self.chain[rec.seq][0]

    @staticmethod
    def _mark_all(rep: SegmentReport, status: str, detail: str) -> None:
        rep.status = status
        for c in rep.chunks:
            c.status, c.detail = status, detail
