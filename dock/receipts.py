"""What the dock signs for a device to keep, and where an upload stands.

A receipt (``Receipt``, signed: ``SignedReceipt``) is the dock's word that it holds a
segment, named by its hashes, its custody-log entry and its leaf in the dock's transparency
log: what a device needs before deleting it (with the leaf's proof, ``SignedReceipt.proof``,
when the device pins witnesses). An unsigned-tail receipt (``UnsignedReceipt``) says the
same of a segment's set-aside unsigned bytes, under a type of its own. Each is canonical
JSON signed by the dock key.
``UploadState`` and ``UnsignedState`` are the tus-style answers: the offset the dock holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, Self

from nacl.signing import SigningKey

from dock.protocol import ProtocolError, b64d_or, b64e, canonical_json, key_id, verify_detached

# v2 named its record's leaf in the dock's transparency log (``leaf_index``); v3 names the
# stored bytes by their stored digest (format v3)
RECEIPT_TYPE = "bwv-dock-receipt-v3"
UNSIGNED_RECEIPT_TYPE = "bwv-dock-unsigned-receipt-v1"


# --------------------------------------------------------------------------- receipts


@dataclass(frozen=True)
class Receipt:
    """The dock's word that it holds a segment: what a device needs before deleting it."""

    device_id: str
    segment_id: str
    seq: int
    manifest_sha256: str
    stored_digest: str
    stored_size: int
    received_at_us: int  # dock's wall-clock time
    log_index: int  # the custody-log entry that records the arrival
    log_entry_hash: str
    leaf_index: int  # the record's leaf in the dock's transparency log (dock/leaves.py)
    gap_before: bool  # the dock does not hold this segment's predecessor
    dock_key_id: str
    type: str = RECEIPT_TYPE

    def payload(self) -> bytes:
        return canonical_json(asdict(self))


@dataclass(frozen=True)
class _Signed:
    """A receipt with the dock's signature over its canonical JSON; the subclasses name the
    receipt's class (and so its ``type``)."""

    receipt_class: ClassVar[type[Receipt] | type[UnsignedReceipt]]
    receipt: Any
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"receipt": asdict(self.receipt), "signature": b64e(self.signature)}

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        if not isinstance(obj, dict) or not isinstance(obj.get("receipt"), dict):
            raise ProtocolError("receipt: expected {receipt: {...}, signature: ...}")
        if set(obj["receipt"]) != {f.name for f in fields(cls.receipt_class)}:
            raise ProtocolError("receipt: unexpected or missing fields")
        try:
            receipt = cls.receipt_class(**obj["receipt"])
        except TypeError as exc:
            raise ProtocolError(f"receipt: {exc}") from None
        sig = obj.get("signature")
        if not isinstance(sig, str):
            raise ProtocolError("receipt: signature missing")
        return cls(receipt, b64d_or(sig, "receipt signature"))

    def verify(self, dock_public_key: bytes) -> bool:
        """Signed by ``dock_public_key``, and of the receipt's own type (so one kind of
        receipt never stands for the other)."""
        wanted: str = self.receipt_class.type  # the class default: the kind's own type
        return (
            self.receipt.type == wanted
            and self.receipt.dock_key_id == key_id(dock_public_key)
            and verify_detached(dock_public_key, self.receipt.payload(), self.signature)
        )


@dataclass(frozen=True)
class SignedReceipt(_Signed):
    """A segment's receipt; ``proof`` (outside the signed receipt: it changes as the log
    grows) is the record leaf's inclusion proof in a checkpoint of the dock's log, as
    ``{"leaf_index", "tree_size", "inclusion": [base64], "checkpoint": note text,
    "tsa_token": base64 | null}`` (dock/translog.py makes it, dock/log_proof.py checks it)."""

    receipt_class: ClassVar[type[Receipt]] = Receipt
    receipt: Receipt
    proof: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.proof is not None:
            out["proof"] = self.proof
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        signed = super().from_json(obj)
        proof = obj.get("proof")
        if proof is None:
            return signed
        if not isinstance(proof, dict):
            raise ProtocolError("receipt: proof must be an object")
        return replace(signed, proof=proof)


def sign_receipt(key: SigningKey, receipt: Receipt) -> SignedReceipt:
    return SignedReceipt(receipt, key.sign(receipt.payload()).signature)


# --------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class _State:
    """Where an upload stands at the dock (tus-style: the offset is what the dock holds);
    the subclasses name the signed receipt's class."""

    signed_class: ClassVar[type[SignedReceipt] | type[SignedUnsignedReceipt]]
    segment_id: str
    size: int
    offset: int
    complete: bool
    receipt: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "size": self.size,
            "offset": self.offset,
            "complete": self.complete,
            "receipt": self.receipt.to_json() if self.receipt else None,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        try:
            receipt = obj.get("receipt")
            return cls(
                str(obj["segment_id"]),
                int(obj["size"]),
                int(obj["offset"]),
                bool(obj["complete"]),
                cls.signed_class.from_json(receipt) if receipt else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"upload state: {exc}") from None


@dataclass(frozen=True)
class UploadState(_State):
    """Where a segment's upload stands."""

    signed_class: ClassVar[type[SignedReceipt]] = SignedReceipt
    receipt: SignedReceipt | None = None


# --------------------------------------------------------------------------- unsigned tails


@dataclass(frozen=True)
class UnsignedReceipt:
    """The dock's word that it holds a segment's set-aside unsigned bytes (the ``.unsigned``
    file crash recovery left, named with its size and hash in the segment's manifest). Its
    own type: it never stands for signed evidence."""

    device_id: str
    segment_id: str  # the segment whose manifest names the bytes
    file: str  # their file name on the device, as the manifest names it
    size: int
    sha256: str
    received_at_us: int
    log_index: int
    log_entry_hash: str
    dock_key_id: str
    type: str = UNSIGNED_RECEIPT_TYPE

    def payload(self) -> bytes:
        return canonical_json(asdict(self))


@dataclass(frozen=True)
class SignedUnsignedReceipt(_Signed):
    receipt_class: ClassVar[type[UnsignedReceipt]] = UnsignedReceipt
    receipt: UnsignedReceipt


def sign_unsigned_receipt(key: SigningKey, receipt: UnsignedReceipt) -> SignedUnsignedReceipt:
    return SignedUnsignedReceipt(receipt, key.sign(receipt.payload()).signature)


@dataclass(frozen=True)
class UnsignedState(_State):
    """Where the upload of a segment's unsigned bytes stands (the offset the dock holds)."""

    signed_class: ClassVar[type[SignedUnsignedReceipt]] = SignedUnsignedReceipt
    receipt: SignedUnsignedReceipt | None = None
