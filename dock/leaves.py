"""The leaves of the dock's transparency log, as the store keeps them.

Every chain record the dock accepts and every custody-log entry it appends is a leaf, in the
order the dock accepted them (a record's leaf, then its custody entries' leaves). The leaf's
bytes (``data``) are:

- a chain record: ``b"bwv:log-record:v2\\0"`` + the record's exact line (final newline
  included: the bytes whose SHA-256 is the segment id);
- a custody-log entry: ``b"bwv:log-custody:v2\\0"`` + the entry as canonical JSON (every field
  of ``LogEntry``, its ``entry_hash`` and ``signature`` included).

Its hash is RFC 9162's ``SHA-256(0x00 || data)``. The store writes each leaf in the same index
transaction as what it records (``log_leaves``), so a leaf never exists without its record or
entry, nor one without the other; the Merkle tree (dock/translog.py) is built from this table,
and can always be rebuilt from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from dock.protocol import canonical_json
from dock.sqldb import Conn
from dock.store import LogEntry

RECORD_DOMAIN = b"bwv:log-record:v2\0"
CUSTODY_DOMAIN = b"bwv:log-custody:v2\0"
LEAF_COLUMNS = "idx, kind, ref, data, leaf_hash"


@dataclass(frozen=True)
class Leaf:
    index: int  # -1 until the store appends it
    kind: str  # "record" | "custody"
    ref: str  # "<device>/<segment id>" for a record, the custody entry's index for an entry
    data: bytes

    @property
    def hash(self) -> bytes:
        return leaf_hash(self.data)


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def record_leaf(device_id: str, segment_id: str, line: bytes) -> Leaf:
    return Leaf(-1, "record", f"{device_id}/{segment_id}", RECORD_DOMAIN + line)


def custody_leaf_data(entry: LogEntry) -> bytes:
    return CUSTODY_DOMAIN + canonical_json(asdict(entry))


def custody_leaf(entry: LogEntry) -> Leaf:
    return Leaf(-1, "custody", str(entry.index), custody_leaf_data(entry))


def append_leaf(db: Conn, leaf: Leaf) -> int:
    """Append ``leaf`` inside the caller's transaction; its index (0-based)."""
    last = db.execute("SELECT MAX(idx) FROM log_leaves").fetchone()[0]
    idx = 0 if last is None else int(last) + 1
    db.execute(
        f"INSERT INTO log_leaves({LEAF_COLUMNS}) VALUES(?,?,?,?,?)",
        (idx, leaf.kind, leaf.ref, leaf.data, leaf.hash),
    )
    return idx


def leaf_of_row(r: tuple[Any, ...]) -> Leaf:
    return Leaf(int(r[0]), str(r[1]), str(r[2]), bytes(r[3]))
