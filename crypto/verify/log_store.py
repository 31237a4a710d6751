"""A dock's whole log against its store (crypto/verify/log.py checks an exhibit's records):
the leaves read back (``parse_leaf``), every record leaf up to the witnessed size held or
explained by a custody event (``audit_leaves``: else ``withheld``), gaps in a device's
logged seqs, and a second history for a device seq (``second_histories``: ``equivocation``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crypto.verify.log import CUSTODY_LEAF, EXPLAINING_ACTIONS, RECORD_LEAF, WITHHELD
from crypto.verify.report import ALTERED, EQUIVOCATION, Finding


@dataclass(frozen=True)
class Leaf:
    index: int
    kind: str  # record | custody | unknown
    device_id: str | None = None
    seq: int | None = None
    sha256: str | None = None  # a record's: of its line; a custody entry's: its entry_hash
    recording_id: str | None = None
    entry: dict[str, Any] | None = None


def parse_leaf(index: int, data: bytes) -> Leaf:
    if data.startswith(RECORD_LEAF):
        line = data[len(RECORD_LEAF) :]
        try:
            r = json.loads(line)["record"]
            return Leaf(
                index,
                "record",
                str(r["device_id"]),
                int(r["seq"]),
                hashlib.sha256(line).hexdigest(),
                r.get("recording_id"),
            )
        except (ValueError, KeyError, TypeError):
            return Leaf(index, "unknown")
    if data.startswith(CUSTODY_LEAF):
        try:
            e = json.loads(data[len(CUSTODY_LEAF) :])
            return Leaf(index, "custody", e.get("device_id"), None, e.get("entry_hash"), None, e)
        except (ValueError, AttributeError):
            return Leaf(index, "unknown")
    return Leaf(index, "unknown")


@dataclass
class Holdings:
    """What a store holds, as ``audit_leaves`` asks: record lines by SHA-256 and custody
    entries by their hash."""

    records: set[str]  # SHA-256 of each held chain record's bytes
    custody: set[str]  # entry_hash of each custody-log entry held


def audit_leaves(
    leaves: list[bytes],
    held: Holdings,
    device_keys: Mapping[str, bytes] | None = None,
    later: Sequence[bytes] = (),
) -> list[Finding]:
    """Every leaf must be in the store, or (a record) explained by a custody event (in the
    leaves, or in the store's ``later`` leaves past the witnessed size); two different
    records for one device seq are ``equivocation``. With ``device_keys`` (device id ->
    public key) a record leaf must carry the device's valid signature (else ``altered``:
    only what the camera signed counts as a second history)."""
    parsed = [parse_leaf(i, d) for i, d in enumerate(leaves)]
    if device_keys is not None:
        bad = [p.index for p in parsed if not _signed_leaf(p, leaves[p.index], device_keys)]
        parsed = [Leaf(p.index, "unknown") if p.index in bad else p for p in parsed]
    explained = set(_explained(parsed))
    explained |= set(_explained(parse_leaf(len(leaves) + i, d) for i, d in enumerate(later)))
    findings: list[Finding] = []
    by_seq: dict[tuple[str, int], Leaf] = {}
    for leaf in parsed:
        if leaf.kind == "record":
            assert leaf.device_id is not None and leaf.seq is not None
            first = by_seq.setdefault((leaf.device_id, leaf.seq), leaf)
            if first.sha256 != leaf.sha256:
                findings.append(
                    Finding(
                        EQUIVOCATION,
                        f"device {leaf.device_id} seq {leaf.seq}: two different signed "
                        f"records in the log (leaves {first.index} and {leaf.index}): two "
                        "histories (a camera rolled back?)",
                        recording_id=leaf.recording_id,
                        seq=leaf.seq,
                    )
                )
            if leaf.sha256 not in held.records and leaf.sha256 not in explained:
                findings.append(_withheld_record(leaf))
        elif leaf.kind == "custody":
            if leaf.sha256 not in held.custody:
                findings.append(
                    Finding(
                        WITHHELD,
                        f"log leaf {leaf.index}: custody entry "
                        f"{(leaf.entry or {}).get('index')} ({(leaf.entry or {}).get('action')}"
                        f", device {leaf.device_id}) is not in the dock's custody log",
                    )
                )
        else:
            findings.append(Finding(ALTERED, f"log leaf {leaf.index}: not a bwv log leaf"))
    return findings


def _signed_leaf(leaf: Leaf, data: bytes, keys: Mapping[str, bytes]) -> bool:
    if leaf.kind != "record":
        return True
    from crypto.records import RecordError, verify_line

    key = keys.get(leaf.device_id or "")
    if key is None:
        return True  # a device the caller does not know: its records are not judged here
    try:
        verify_line(data[len(RECORD_LEAF) :], key, leaf.device_id)
    except RecordError:
        return False
    return True


def _withheld_record(leaf: Leaf) -> Finding:
    return Finding(
        WITHHELD,
        f"device {leaf.device_id} seq {leaf.seq} (log leaf {leaf.index}"
        + (f", recording {leaf.recording_id}" if leaf.recording_id else "")
        + "): the witnessed log has this record; the store does not hold it and no custody "
        "event explains it",
        recording_id=leaf.recording_id,
        seq=leaf.seq,
    )


def _explained(parsed: Iterable[Leaf]) -> dict[str, Leaf]:
    """Records a logged custody event says left the store on purpose: SHA-256 -> the
    custody leaf that says so (the first)."""
    out: dict[str, Leaf] = {}
    for leaf in parsed:
        e = leaf.entry or {}
        if leaf.kind == "custody" and e.get("action") in EXPLAINING_ACTIONS:
            detail = e.get("detail") or {}
            for h in (detail.get("record_sha256"), detail.get("manifest_sha256")):
                if isinstance(h, str):
                    out.setdefault(h, leaf)
    return out


@dataclass(frozen=True)
class Explained:
    """A record the witnessed log has and the store no longer holds, and the custody entry
    that explains why (a deletion under retention)."""

    device_id: str | None
    seq: int | None
    recording_id: str | None
    leaf_index: int  # the record's leaf
    action: str
    at_us: int | None
    actor: str | None
    entry_index: int | None  # the custody entry's index in the custody log
    witnessed: bool  # the entry is in the witnessed checkpoint (else logged after it)

    def line(self) -> str:
        from crypto.verify.timecheck import utc

        what = "deleted under retention" if "retention" in self.action else self.action
        when = f" on {utc(self.at_us)} UTC" if isinstance(self.at_us, int) else ""
        rec = f" (recording {self.recording_id})" if self.recording_id else ""
        late = "" if self.witnessed else ", logged after the witnessed checkpoint"
        return (
            f"device {self.device_id} seq {self.seq}{rec}: {what}{when} by {self.actor}, "
            f"custody entry {self.entry_index}{late}"
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"line": self.line()}


def explained_records(
    leaves: list[bytes], held: Holdings, later: Sequence[bytes] = ()
) -> list[Explained]:
    """Each record leaf the store does not hold that a custody event explains (in the
    witnessed ``leaves``, or in the store's ``later`` leaves past the witnessed size)."""
    parsed = [parse_leaf(i, d) for i, d in enumerate(leaves)]
    after = [parse_leaf(len(leaves) + i, d) for i, d in enumerate(later)]
    why = _explained(parsed)
    for sha, leaf in _explained(after).items():
        why.setdefault(sha, leaf)
    out = []
    for leaf in parsed:
        if leaf.kind != "record" or leaf.sha256 in held.records or leaf.sha256 not in why:
            continue
        c = why[leaf.sha256]
        e = c.entry or {}
        out.append(
            Explained(
                leaf.device_id,
                leaf.seq,
                leaf.recording_id,
                leaf.index,
                str(e.get("action")),
                e.get("at_us"),
                e.get("actor"),
                e.get("index"),
                c.index < len(leaves),
            )
        )
    return out


def device_seqs(leaves: list[bytes]) -> dict[str, dict[int, Leaf]]:
    """The log's records per device and seq (the first leaf of each)."""
    out: dict[str, dict[int, Leaf]] = {}
    for i, d in enumerate(leaves):
        leaf = parse_leaf(i, d)
        if leaf.kind == "record" and leaf.device_id is not None and leaf.seq is not None:
            out.setdefault(leaf.device_id, {}).setdefault(leaf.seq, leaf)
    return out


def seq_gaps(leaves: list[bytes]) -> list[Finding]:
    """Seqs a device signed that never reached the log: a later record of the device is in
    the log, an earlier one is not (deleted from the camera before it shipped)."""
    out = []
    for device, logged in sorted(device_seqs(leaves).items()):
        seqs = sorted(logged)
        for a, b in zip(seqs, seqs[1:], strict=False):
            if b > a + 1:
                nxt = logged[b]
                out.append(
                    Finding(
                        WITHHELD,
                        f"device {device} seqs {a + 1}..{b - 1} never reached the dock's "
                        f"witnessed log, though seq {b} (log leaf {nxt.index}) follows them: "
                        "signed by the camera and deleted before they shipped",
                        seq=a + 1,
                    )
                )
    return out


def missing_from(
    device_id: str, present: Iterable[int], leaves: list[bytes], what: str
) -> list[Finding]:
    """Seqs the log holds for ``device_id`` that are not among ``present`` (a device's
    outbox together with what the dock holds): whole recordings deleted show here."""
    have = set(present)
    logged = device_seqs(leaves).get(device_id, {})
    return [
        Finding(
            WITHHELD,
            f"device {device_id} seq {s} (log leaf {leaf.index}"
            + (f", recording {leaf.recording_id}" if leaf.recording_id else "")
            + f") is in the witnessed log but not in {what}",
            recording_id=leaf.recording_id,
            seq=s,
        )
        for s, leaf in sorted(logged.items())
        if s not in have
    ]


def second_histories(lines: Iterable[bytes], leaves: list[bytes], what: str) -> list[Finding]:
    """Chain records (``lines``, e.g. a camera's outbox) whose device and seq the witnessed
    log holds as another record: the camera signed two histories (rolled back)."""
    logged = device_seqs(leaves)
    out = []
    for line in lines:
        mine = parse_leaf(-1, RECORD_LEAF + bytes(line))
        if mine.kind != "record" or mine.device_id is None or mine.seq is None:
            continue
        other = logged.get(mine.device_id, {}).get(mine.seq)
        if other is not None and other.sha256 != mine.sha256:
            out.append(
                Finding(
                    EQUIVOCATION,
                    f"device {mine.device_id} seq {mine.seq}: {what} holds a record the "
                    f"witnessed log has as another (log leaf {other.index}, recording "
                    f"{other.recording_id}): the camera signed two histories (rolled back?)",
                    recording_id=mine.recording_id,
                    seq=mine.seq,
                )
            )
    return out
