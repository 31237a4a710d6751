"""Shipping the set-aside unsigned bytes a segment's manifest names (``unsigned_tail``: what
a crash left after the last signed chunk), once the dock holds the segment: as their own
kind of upload (dock/unsigned.py), deleted on the dock's receipt for them. A refusal keeps
them on the camera and is reported; it never holds up the segment."""

from __future__ import annotations

import logging
from pathlib import Path

from dock.client import DockClient, DockRefused, DockUnavailable
from dock.outbox import Outbox, OutboxSegment, _hash_file
from dock.protocol import Code, segment_id_for
from dock.receipts import UnsignedState
from dock.ship_chunks import ReceiptInvalid

log = logging.getLogger("bwv.shipper")


def ship_unsigned(
    client: DockClient, outbox: Outbox, seg: OutboxSegment, chunk_bytes: int, max_rounds: int
) -> int:
    """Ship the set-aside unsigned bytes the segment's manifest names, marked as what they
    are; delete them on the dock's receipt. The bytes sent."""
    path, tail = seg.unsigned_path, seg.unsigned
    if path is None or tail is None or not path.is_file():
        return 0
    if _hash_file(path) != (tail[2], tail[1]):
        log.error("%s differs from the size and hash its manifest names: kept", path.name)
        return 0
    sid = segment_id_for(seg.manifest_path.read_bytes())
    sent = 0
    try:
        state = client.unsigned_state(sid)
        for _ in range(max_rounds):
            if state.complete:
                break
            try:
                with open(path, "rb") as f:
                    while True:
                        f.seek(state.offset)
                        chunk = f.read(min(chunk_bytes, tail[1] - state.offset))
                        state = client.append_unsigned(sid, state.offset, chunk)
                        sent += len(chunk)
                        if state.complete or state.offset >= tail[1]:
                            break
            except DockRefused as exc:
                if exc.code not in Code.REREAD:
                    raise
                state = client.unsigned_state(sid)
        else:
            raise DockUnavailable(f"{path.name}: no progress after {max_rounds}")
    except DockRefused as exc:
        log.error("dock refused %s (unsigned bytes): %s; kept", path.name, exc.detail)
        return sent
    _check_unsigned_receipt(client, state, seg, sid, path)
    assert state.receipt is not None
    outbox.delete_unsigned(path, state.receipt)
    log.info("shipped %s: %d bytes never signed, kept by the dock as unsigned", path.name, tail[1])
    return sent


def _check_unsigned_receipt(
    client: DockClient, state: UnsignedState, seg: OutboxSegment, sid: str, path: Path
) -> None:
    r = state.receipt
    if not state.complete or r is None:
        raise ReceiptInvalid(f"{path.name}: upload complete but no receipt given")
    ident = client.credentials
    rc = r.receipt
    problems = []
    if not r.verify(ident.dock_public_key):
        problems.append("not signed by the pinned dock key")
    if rc.device_id != ident.device_id or rc.segment_id != sid:
        problems.append("names another device or segment")
    if seg.unsigned is None or (rc.file, rc.size, rc.sha256) != seg.unsigned:
        problems.append("names other bytes")
    elif _hash_file(path) != (rc.sha256, rc.size):
        problems.append("names other bytes than those here")
    if problems:
        raise ReceiptInvalid(f"{path.name}: receipt refused: " + ", ".join(problems))
