"""A dock store checked against its witnessed log (``bwv verify STORE``, ``bwv dock status
--verify``): nothing the witness saw logged may be gone from the store unexplained.

1. The checkpoint: the one fetched from the witness (``LogTrust.checkpoint``), else the
   store's own ``log/checkpoint``; either must be cosigned by a witness key given.
2. The store's log leaves (the index's ``log_leaves``, dock/leaves.py; ``STORE/log/tree`` is
   a copy of them) rebuilt to the checkpoint's size must hash to its root: else the dock's
   log was rewritten or cut back (``withheld``).
3. Every leaf up to that size: a chain record the store holds, or one a logged custody
   event explains; a custody entry the store's custody log holds (``withheld`` else); two
   records for one device seq are ``equivocation``; seqs a device signed that never reached
   the log, though later ones did, are ``withheld``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.verify.log import (
    WITHHELD,
    Holdings,
    LogTrust,
    Witnessed,
    audit_leaves,
    open_checkpoint,
    parse_leaf,
    second_histories,
    seq_gaps,
)
from crypto.verify.report import Finding

LOG_DIR = "log"
CHECKPOINT_FILE = "checkpoint"


@dataclass
class StoreAudit:
    """The store against its witnessed log."""

    checkpoint: Witnessed | None
    log_size: int | None  # leaves the store's log holds
    findings: list[Finding] = field(default_factory=list)
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per recording

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
    from dock.holdings import open_store

    store_dir = Path(store_dir)
    note = trust.checkpoint
    what = "the witness's checkpoint"
    if note is None:
        what = f"{LOG_DIR}/{CHECKPOINT_FILE}"
        path = store_dir / LOG_DIR / CHECKPOINT_FILE
        note = path.read_bytes() if path.is_file() else None
    cp, findings = open_checkpoint(note, trust, what)
    audit = StoreAudit(cp, None, findings)
    if cp is None:
        return audit
    store = open_store(store_dir)
    try:
        leaves = _rebuilt(store, cp, audit)
        if leaves is None:
            return audit
        held, keys = held_by(store)
    finally:
        store.close()
    audit.findings += audit_leaves(leaves, held, keys) + seq_gaps(leaves)
    if outbox:
        lines = [d for n, d in sorted(outbox.items()) if n.startswith("chain/")]
        audit.findings += second_histories(lines, leaves, "the camera's outbox")
    audit.recordings = _summary(leaves, audit.findings)
    return audit


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


def _summary(leaves: list[bytes], findings: list[Finding]) -> dict[str, dict[str, Any]]:
    """Per recording: its records in the log, and what the audit found about it."""
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
    for f in findings:
        if f.recording_id in out:
            out[f.recording_id]["status"] = f.kind
    return out
