"""The chain room: manifest and end records, each signed and naming its predecessor; read
all together (``ChainRoom``) or one at a time as a dock receives them
(``check_chain_record``).

The counter rule (a key in a TPM: docs/evidence-format.md, "Version 4"): along the chain
in seq order, each record's counter is its predecessor's (the previous record given) plus
one. More is ``counter_gap``: ``k = counter - prev - 1`` records the TPM counted are not in
the chain (removed, the storage rolled back, or power lost between counting and writing);
less or equal is ``counter_reused``. The first record given has no baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from crypto.digests import StoredDigest, digest_of
from crypto.manifest import chain_file_name
from crypto.records import CHAIN_TYPES, RecordError, SignedRecord, verify_line
from crypto.verify.inputs import basename
from crypto.verify.report import ALTERED, COUNTER_GAP, COUNTER_REUSED, EQUIVOCATION
from crypto.verify.state import RECORD_REASON, VerifierState


class ChainRoom(VerifierState):
    def _read_chain(self, chains: list[tuple[str, bytes]]) -> None:
        for name, data in chains:
            try:
                rec = verify_line(data, self.pk, self.device_id, CHAIN_TYPES)
            except RecordError as exc:
                if exc.reason == "foreign":
                    self._note_other_signer(data)
                self.find(
                    RECORD_REASON.get(exc.reason, ALTERED),
                    f"chain record: {exc.reason}: {exc.detail}",
                    file=name,
                )
                continue
            self._note_device(rec)
            seq = rec.seq
            if self.check_names and basename(name) != chain_file_name(seq, rec.type):
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
                    "duplicate" if same else EQUIVOCATION,
                    f"chain record {seq} appears again (also in {other}, identical)"
                    if same
                    else f"two different signed chain records {seq} (the other in {other}): "
                    "the device key signed two histories",
                    file=name,
                    seq=seq,
                )
                continue
            self.chain[seq] = (name, rec)
        self._check_sequence(self.chain, self.first_chain_seq, "chain", None)
        self._check_counters()

    def _check_counters(self) -> None:
        prev: SignedRecord | None = None
        for seq in sorted(self.chain):
            name, rec = self.chain[seq]
            counter = rec.record["counter"]
            if counter is None:  # an Ed25519 key: no counter
                continue
            if prev is not None:
                problem = counter_problem(prev.seq, prev.record["counter"], seq, counter)
                if problem is not None:
                    kind, detail = problem
                    self.find(
                        kind,
                        detail,
                        file=name,
                        seq=seq,
                        counter=counter,
                        prev_seq=prev.seq,
                        prev_counter=prev.record["counter"],
                    )
            prev = rec

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


@dataclass(frozen=True)
class RecordCheck:
    """One chain record checked on its own (what a dock does as records arrive)."""

    ok: bool
    problems: tuple[str, ...]
    record: dict[str, Any] | None
    sha256: str | None  # of the record's file: what the next record names as prev_sha256
    gap: bool  # the predecessor was not given, and this is not record 0
    counter: int | None = None  # the record's TPM counter (None: an Ed25519 key)


def check_chain_record(
    line: bytes,
    device_public_key: bytes,
    previous_sha256: str | None,
    stored: bytes | BinaryIO | StoredDigest | None = None,
    device_id: str | None = None,
    previous_counter: int | None = None,
) -> RecordCheck:
    """Check a chain record (manifest, end, time_sync, clock_step): signature, device, the
    link to the previous record (``previous_sha256``: the SHA-256 of the previous record's
    file, if held), the counter rule against ``previous_counter`` (the previous record's
    counter, if held) and, for a manifest, that ``stored`` (bytes, a binary file read to its end,
    or the ``StoredDigest`` of its bytes taken as they arrived) is what it signs."""
    try:
        rec = verify_line(bytes(line), device_public_key, device_id, CHAIN_TYPES)
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
    if previous_counter is not None and r["counter"] is not None:
        problem = counter_problem(None, previous_counter, r["seq"], r["counter"])
        if problem is not None:
            problems.append(f"{problem[0]}: {problem[1]}")
    if r["type"] == "manifest":
        if stored is None:
            problems.append("the stored segment was not given")
        else:
            # a StoredDigest: computed as the bytes arrived (the dock)
            d = stored if isinstance(stored, StoredDigest) else digest_of(stored)
            if d.hexdigest() != r["stored_digest"] or d.size != r["stored_size"]:
                problems.append("the stored segment is not the one the manifest signs")
    return RecordCheck(not problems, tuple(problems), r, rec.sha256, gap, r["counter"])


def counter_problem(
    prev_seq: int | None, prev_counter: int, seq: int, counter: int
) -> tuple[str, str] | None:
    """The counter rule between a chain record and the one before it in the chain given
    (``prev_seq``: its seq, None when not known): ``(kind, detail)``, or None when
    ``counter`` is ``prev_counter + 1``."""
    if counter == prev_counter + 1:
        return None
    before = "the record before it" if prev_seq is None else f"record {prev_seq} before it"
    if counter > prev_counter + 1:
        k = counter - prev_counter - 1
        return (
            COUNTER_GAP,
            f"chain record {seq} has counter {counter}, {before} {prev_counter}: "
            f"{k} record{'s' if k != 1 else ''} the device's TPM counted "
            f"{'are' if k != 1 else 'is'} not in this chain (removed, the device's storage "
            "rolled back, or power lost between counting and writing)",
        )
    return (
        COUNTER_REUSED,
        f"chain record {seq} has counter {counter}, not above {before}: {prev_counter} "
        "(a TPM counter never goes back or repeats)",
    )
