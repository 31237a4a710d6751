"""Receiving a fully uploaded segment: verify it against what the dock holds for its
device, then store it and sign the receipt (``POST /v1/segments/{id}/complete``)."""

from __future__ import annotations

import logging
from typing import Any

from dock.agency import agency_refusal
from dock.instance import Dock
from dock.middleware import Refused
from dock.protocol import Code
from dock.receipts import Receipt, SignedReceipt, sign_receipt
from dock.store import DeviceRecord, StoreError
from dock.translog import sync_quietly, with_proof
from dock.verify import ManifestError

log = logging.getLogger("bwv.dock")


def receive_segment(dock: Dock, device: DeviceRecord, segment_id: str) -> SignedReceipt:
    """Verify a fully uploaded segment against what the dock holds, then store it."""
    store = dock.store
    dev = device.device_id
    with store.completing(dev, segment_id) as blob:
        state = store.upload_state(dev, segment_id)  # another request may have finished it
        if state is not None and state.complete and state.receipt is not None:
            return with_proof(dock.translog, state.receipt)
        manifest = store.manifest_of_upload(dev, segment_id)
        now = dock.clock()
        try:
            fields = dock.verifier.parse(manifest)
        except ManifestError as exc:
            store.reject_upload(dev, segment_id, [str(exc)], now)
            raise Refused(422, Code.MANIFEST_INVALID, f"segment refused: {exc}") from None
        prev = store.held_segment(dev, seq=fields.seq - 1) if fields.seq > 0 else None
        result = dock.verifier.verify(
            device.public_key,
            manifest,
            blob,
            prev.manifest_sha256 if prev else None,
            received=store.received_digest(dev, segment_id),  # None: the file is read
        )
        if not result.ok or result.fields is None:
            store.reject_upload(dev, segment_id, list(result.problems), now)
            log.warning(
                "refused segment %s of %s: %s", segment_id[:16], dev, "; ".join(result.problems)
            )
            code = (
                Code.CHAIN_BREAK
                if any(p.startswith("chain break") for p in result.problems)
                else Code.VERIFICATION
            )
            raise Refused(422, code, "segment failed verification: " + "; ".join(result.problems))
        refused = agency_refusal(dock.agency_key_id, result.fields, blob)
        if refused is not None:
            store.reject_upload(dev, segment_id, [refused[1]], now)
            log.warning("refused segment %s of %s: %s", segment_id[:16], dev, refused[1])
            raise Refused(422, refused[0], f"segment refused: {refused[1]}")

        def sign(fields_: dict[str, Any]) -> SignedReceipt:
            return sign_receipt(dock.key, Receipt(**fields_))

        try:
            receipt = store.commit_segment(dev, segment_id, result.fields, now, sign, result.gap)
        except StoreError as exc:
            if exc.status == 409:
                store.reject_upload(dev, segment_id, [str(exc)], now)
            raise
    # the record's leaf is in the store: a checkpoint that includes it, then its proof
    sync_quietly(dock.translog)
    receipt = with_proof(dock.translog, receipt)
    log.info(
        "received segment %s of %s (seq %d, %d bytes)%s",
        segment_id[:16],
        dev,
        result.fields.seq,
        receipt.receipt.stored_size,
        " after a gap" if result.gap else "",
    )
    return receipt
