"""The custody log: append-only and hash-chained. Each entry holds the hash of the one
before it and is signed by the dock key; ``verify_custody_log`` replays the chain."""

from __future__ import annotations

import json
from typing import Any

from nacl.signing import SigningKey

from dock.protocol import b64d, b64e, canonical_json, sha256_hex, verify_detached
from dock.sqldb import Conn
from dock.store import GENESIS, LogEntry

COLUMNS = (
    "idx, at_us, actor, action, device_id, segment_id, sha256, detail, prev_hash,"
    " entry_hash, signature"
)


def entry_hash(e: LogEntry) -> str:
    return sha256_hex(canonical_json(e.body()))


def append_entry(
    db: Conn,
    key: SigningKey,
    actor: str,
    action: str,
    now_us: int,
    *,
    device_id: str | None = None,
    segment_id: str | None = None,
    sha256: str | None = None,
    detail: dict[str, Any] | None = None,
) -> LogEntry:
    """Append one entry, chained to the last and signed by ``key``, inside the caller's
    transaction ``db``."""
    last = db.execute(
        "SELECT idx, entry_hash FROM custody_log ORDER BY idx DESC LIMIT 1"
    ).fetchone()
    idx, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    e = LogEntry(idx, now_us, actor, action, device_id, segment_id, sha256, detail or {}, prev)
    h = entry_hash(e)
    sig = b64e(key.sign(bytes.fromhex(h)).signature)
    db.execute(
        f"INSERT INTO custody_log({COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
        (
            idx,
            now_us,
            actor,
            action,
            device_id,
            segment_id,
            sha256,
            json.dumps(e.detail, sort_keys=True),
            prev,
            h,
            sig,
        ),
    )
    return LogEntry(
        idx, now_us, actor, action, device_id, segment_id, sha256, e.detail, prev, h, sig
    )


def entry_of_row(r: tuple[Any, ...]) -> LogEntry:
    """A ``custody_log`` row (``COLUMNS``) as its entry."""
    return LogEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9], r[10])


def verify_custody_log(entries: list[LogEntry], dock_public_key: bytes) -> list[str]:
    """Replay the log's hash chain and signatures; returns the problems found (none: [])."""
    problems = []
    prev, expect_idx = GENESIS, 1
    for e in entries:
        if e.index != expect_idx:
            problems.append(f"entry {e.index}: expected index {expect_idx} (entries missing)")
        if e.prev_hash != prev:
            problems.append(f"entry {e.index}: does not chain to the entry before it")
        if entry_hash(e) != e.entry_hash:
            problems.append(f"entry {e.index}: content does not match its hash")
        try:
            sig, digest = b64d(e.signature), bytes.fromhex(e.entry_hash)
        except ValueError:
            sig, digest = b"", b""
        if not verify_detached(dock_public_key, digest, sig):
            problems.append(f"entry {e.index}: dock signature does not verify")
        prev, expect_idx = e.entry_hash, e.index + 1
    return problems
