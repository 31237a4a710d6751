"""A dock store checked against its witnessed log (``bwv verify STORE``, ``bwv dock status
--verify``): nothing the witness saw logged may be gone from the store unexplained.

1. The checkpoint: the one fetched from the witness (``LogTrust.checkpoint``), else the
   store's own ``log/checkpoint``; either must be cosigned by a witness key given.
2. The store's log leaves (the index's ``log_leaves``, dock/leaves.py; ``STORE/log/tree`` is
   a copy of them) rebuilt to the checkpoint's size must hash to its root: else the dock's
   log was rewritten or cut back (``withheld``).
3. Every leaf up to that size: a chain record the store holds, or one a logged custody
   event explains (``retention_deleted``: reported as a line, ``explained``, not a
   finding; the entry may be in the store's log past the witnessed size); a custody entry
   the store's custody log holds (``withheld`` else); two records for one device seq are
   ``equivocation``; seqs a device signed that never reached the log, though later ones
   did, are ``withheld``.
4. Per recording, T1 (``recorded_before_us``): the RFC 3161 time of the first checkpoint the
   dock kept that includes its last record (``STORE/log/checkpoints/<m>`` and ``<m>.tsr``,
   the token checked under the TSA CA given); a broken one is ``altered``, a record claiming
   a wall time after it ``time_inconsistent``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.verify.log import (
    RECORD_LEAF,
    TIME_INCONSISTENT,
    WITHHELD,
    LogTrust,
    Witnessed,
    open_checkpoint,
)
from crypto.verify.log_first import (
    First,
    FirstChecker,
    checkpoint_paper,
    first_size,
    token_paper,
)
from crypto.verify.log_store import (
    Explained,
    Holdings,
    audit_leaves,
    explained_records,
    parse_leaf,
    second_histories,
    seq_gaps,
)
from crypto.verify.report import Finding
from crypto.verify.timecheck import utc

LOG_DIR = "log"
CHECKPOINT_FILE = "checkpoint"


@dataclass
class StoreAudit:
    """The store against its witnessed log."""

    checkpoint: Witnessed | None
    log_size: int | None  # leaves the store's log holds
    findings: list[Finding] = field(default_factory=list)
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per recording
    explained: list[Explained] = field(default_factory=list)  # records deleted, and why

    @property
    def ok(self) -> bool:
        return self.checkpoint is not None and not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checkpoint": self.checkpoint.to_json() if self.checkpoint else None,
            "log_size": self.log_size,
            "findings": [f.__dict__ for f in self.findings],
            "recordings": self.recordings,
            "explained": [e.to_json() for e in self.explained],
        }


def held_by(store: Any) -> tuple[Holdings, dict[str, bytes]]:
    """What ``store`` holds (record SHA-256s, custody entry hashes) and each device's key."""
    from dock.holdings import device_holdings
    from dock.store import manifest_key

    records: set[str] = set()
    keys: dict[str, bytes] = {}
    for dev in store.list_devices():
        keys[dev.device_id] = bytes(dev.public_key)
        for r in device_holdings(store, dev.device_id).records:
            with store.open_object(manifest_key(dev.device_id, r.held.segment_id)) as f:
                records.add(hashlib.sha256(f.read()).hexdigest())
    custody: set[str] = set()
    after = 0
    while batch := store.custody_log(after=after, limit=1000):
        custody |= {e.entry_hash for e in batch}
        after = batch[-1].index
    return Holdings(records, custody), keys


def audit_store(
    store_dir: Path, trust: LogTrust, outbox: dict[str, bytes] | None = None
) -> StoreAudit:
    """Check the store in ``store_dir`` against the witnessed checkpoint; with ``outbox``
    (a camera's outbox files by name) also that none of its chain records is a second
    history of a seq the log holds."""
    from dock.checkpoints import checkpoint_store
    from dock.holdings import open_store

    store_dir = Path(store_dir)
    store = open_store(store_dir)
    try:
        cps = checkpoint_store(store_dir, store)
        note = trust.checkpoint
        what = "the witness's checkpoint"
        if note is None:  # the dock's latest: its file, or the shared index's
            what = f"{LOG_DIR}/{CHECKPOINT_FILE}"
            path = store_dir / LOG_DIR / CHECKPOINT_FILE
            if cps.shared:
                kept = cps.latest()
                note = kept.note if kept is not None else None
            else:
                note = path.read_bytes() if path.is_file() else None
        cp, findings = open_checkpoint(note, trust, what)
        audit = StoreAudit(cp, None, findings)
        if cp is None:
            return audit
        leaves = _rebuilt(store, cp, audit)
        if leaves is None:
            return audit
        later = _later(store, len(leaves))
        held, keys = held_by(store)
        audit.findings += audit_leaves(leaves, held, keys, later) + seq_gaps(leaves)
        audit.explained = explained_records(leaves, held, later)
        if outbox:
            lines = [d for n, d in sorted(outbox.items()) if n.startswith("chain/")]
            audit.findings += second_histories(lines, leaves, "the camera's outbox")
        audit.recordings = _summary(leaves, audit.findings, audit.explained)
        _upper_bounds(cps, leaves, audit, trust)
    finally:
        store.close()
    return audit


def _upper_bounds(cps: Any, leaves: list[bytes], audit: StoreAudit, trust: LogTrust) -> None:
    """Each recording's T1 from the first checkpoint the dock kept that includes its last
    record (crypto/verify/log_first.py, as for an exhibit); ``cps``: the log's
    ``dock.checkpoints.CheckpointStore``."""
    from tlog.merkle import inclusion_proof, leaf_hash

    sizes = [s for s in cps.sizes() if s <= len(leaves)]
    hashes = [bytes(leaf_hash(d)) for d in leaves]
    papers: dict[str, bytes] = {}
    checker = FirstChecker(papers, trust.tsa_ca, trust.token_time)
    for rec_id, r in audit.recordings.items():
        last = max((parse_leaf(i, leaves[i]) for i in r["leaves"]), key=lambda x: x.seq or 0)
        m = first_size(sizes, last.index)
        kept = cps.at(m) if m is not None else None
        r["recorded_before_us"] = None
        if m is None or kept is None:
            continue
        papers[checkpoint_paper(m)] = kept.note
        if kept.token is not None:
            papers[token_paper(m)] = kept.token
        proof = First(m, inclusion_proof(last.index, m, hashes))
        got = checker.check(hashes[last.index], last.index, proof, last.seq)
        if got.finding is not None and got.finding not in audit.findings:
            audit.findings.append(got.finding)  # its file: STORE/log/checkpoints/<m>
        r["recorded_before_us"] = got.t1_us
        claimed = max((w for i in r["leaves"] for w in _walls(leaves[i])), default=None)
        if got.t1_us is not None and claimed is not None and claimed > got.t1_us:
            r["status"] = TIME_INCONSISTENT
            audit.findings.append(
                Finding(
                    TIME_INCONSISTENT,
                    f"recording {rec_id} claims wall time {utc(claimed)} UTC, after the "
                    f"time-stamped checkpoint that first includes it ({utc(got.t1_us)} UTC, "
                    f"{LOG_DIR}/checkpoints/{m})",
                    recording_id=rec_id,
                )
            )


def _walls(leaf: bytes) -> list[int]:
    """The wall times a record leaf's record claims (a manifest's start and end)."""
    import json

    try:
        r = json.loads(leaf[len(RECORD_LEAF) :])["record"]
    except (ValueError, KeyError, TypeError):
        return []
    return [w for w in (r.get("wall_start_us"), r.get("wall_end_us")) if isinstance(w, int)]


def _rebuilt(store: Any, cp: Witnessed, audit: StoreAudit) -> list[bytes] | None:
    """The store's log leaves up to the checkpoint's size, when they hash to its root (the
    tree is rebuilt from the store's leaves, as the dock builds it: dock/leaves.py)."""
    from tlog.merkle import leaf_hash, root_from_hashes

    leaves: list[bytes] = []
    while len(leaves) < cp.size:
        batch = store.log_leaves(len(leaves) - 1, min(10_000, cp.size - len(leaves)))
        if not batch:
            break
        leaves += [bytes(leaf.data) for leaf in batch]
    audit.log_size = int(store.log_size())
    if len(leaves) < cp.size:
        audit.findings.append(
            Finding(
                WITHHELD,
                f"the dock's log holds {len(leaves)} leaves; the witness cosigned {cp.size}: "
                "the log was cut back",
            )
        )
        return None
    if root_from_hashes([leaf_hash(d) for d in leaves]) != cp.root:
        audit.findings.append(
            Finding(
                WITHHELD,
                f"the dock's log at size {cp.size} does not hash to the root the witness "
                "cosigned: the log was rewritten",
            )
        )
        return None
    return leaves


def _later(store: Any, size: int) -> list[bytes]:
    """The store's leaves past the witnessed size (custody entries there may explain a
    deletion the witness has not seen yet)."""
    out: list[bytes] = []
    while batch := store.log_leaves(size + len(out) - 1, 10_000):
        out += [bytes(leaf.data) for leaf in batch]
    return out


def _summary(
    leaves: list[bytes], findings: list[Finding], explained: Sequence[Explained] = ()
) -> dict[str, dict[str, Any]]:
    """Per recording: its records in the log, and what the audit found about it (``deleted``:
    every record of it is gone, each explained by a deletion under retention)."""
    out: dict[str, dict[str, Any]] = {}
    for i, d in enumerate(leaves):
        leaf = parse_leaf(i, d)
        if leaf.kind != "record" or leaf.recording_id is None:
            continue
        r = out.setdefault(
            leaf.recording_id,
            {"device_id": leaf.device_id, "records": 0, "leaves": [], "status": "present"},
        )
        r["records"] += 1
        r["leaves"].append(i)
    gone: dict[str, int] = {}
    for e in explained:
        if e.recording_id is not None:
            gone[e.recording_id] = gone.get(e.recording_id, 0) + 1
    for rec, n in gone.items():
        if rec in out and n == out[rec]["records"]:
            out[rec]["status"] = "deleted"
    for f in findings:
        if f.recording_id in out:
            out[f.recording_id]["status"] = f.kind
    return out
