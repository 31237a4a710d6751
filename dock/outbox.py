"""The device's outbox as the shipper sees it: chain records waiting to ship, with their
stored segments and the set-aside unsigned bytes their manifests name; kept receipts.

``ChainOutbox.delete`` keeps the dock's receipt before it deletes anything; ``reconcile`` (at
the shipper's start) finishes the deletes a crash cut short, for segments whose kept receipt
is valid for their exact bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from crypto.digests import digest_of
from crypto.durable import fsync_dir
from crypto.layout import SEG_EXT, SEGMENTS_DIR
from crypto.manifest import CHAIN_DIR, parse_chain_file_name
from dock.protocol import canonical_json, segment_id_for
from dock.receipts import Receipt, SignedReceipt, SignedUnsignedReceipt
from dock.verify import (
    EMPTY_SHA256,
    ChainRecordVerifier,
    ManifestError,
    ManifestFields,
    SegmentVerifier,
)

log = logging.getLogger("bwv.shipper")

READ_BLOCK = 1 << 20
Stamp = tuple[int, int, int, int]  # a record file's inode, size, mtime and ctime (ns)


def _stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _stamp(e: os.DirEntry[str]) -> Stamp | None:
    try:
        return _stamp_of(e.stat())
    except FileNotFoundError:
        return None  # gone since the listing


def _blob_name(f: ManifestFields | ManifestError) -> str:
    """The stored file a record names ("" for a record without one)."""
    if isinstance(f, ManifestError) or f.record_type != "manifest":
        return ""
    return str(f.raw.get("file", ""))


# --------------------------------------------------------------------------- outbox


@dataclass(frozen=True)
class OutboxSegment:
    """One chain record waiting on the device, with its stored blob (None: an end record,
    whose upload is empty)."""

    seq: int
    manifest_path: Path
    blob_path: Path | None
    unsigned_path: Path | None = None  # set-aside unsigned bytes the manifest names
    unsigned: tuple[str, int, str] | None = None  # their (file, size, sha256) as named

    @property
    def name(self) -> str:
        return self.manifest_path.name


class Outbox(Protocol):
    verifier: SegmentVerifier  # reads its records (the shipper names their digests by it)

    def finished(self) -> list[OutboxSegment]:
        """Records ready to ship, oldest (lowest sequence number) first."""
        ...

    def ready(self) -> Iterator[OutboxSegment]:
        """``finished``, each read only as the caller asks for it."""
        ...

    def delete(self, segment: OutboxSegment, receipt: SignedReceipt) -> None:
        """Keep ``receipt``, then remove the segment (only ever after a valid receipt)."""
        ...

    def delete_unsigned(self, path: Path, receipt: SignedUnsignedReceipt) -> None:
        """Keep the dock's receipt for set-aside unsigned bytes, then remove them."""
        ...

    def reconcile(self, dock_public_key: bytes, device_id: str) -> list[str]:
        """At start: delete what a kept, valid receipt covers but a crash left behind."""
        ...


class ChainOutbox:
    """The device's outbox as crypto/ writes it (crypto/FORMAT.md, "Outbox"): chain records
    in ``chain/`` (``<seq:012d>.<manifest|end>.json``) and each manifest's stored segment,
    named by its ``file`` field, in ``segments/``, with the ``.unsigned`` file it names, if
    any. The trail stays.

    ``delete`` keeps the receipt as ``<receipts_dir>/<segment id>.json`` (fsync'd; default
    ``receipts/`` beside the outbox: device bookkeeping, like the chain state) before it
    removes the blob and the record. The newest record file of the chain is kept (the chain
    state can be rebuilt from it: its sequence number is never handed out again); it goes
    once a newer record exists.
    """

    def __init__(
        self,
        root: Path,
        *,
        receipts_dir: Path | None = None,
        blobs_dir: Path | None = None,
        verifier: SegmentVerifier | None = None,
    ) -> None:
        self.root = Path(root)
        self.chain_dir = self.root / CHAIN_DIR
        self.blobs_dir = Path(blobs_dir) if blobs_dir else self.root / SEGMENTS_DIR
        self.receipts = Path(receipts_dir) if receipts_dir else self.root.parent / "receipts"
        self.verifier: SegmentVerifier = verifier or ChainRecordVerifier()
        self.unreadable: dict[str, str] = {}  # record file -> why it cannot be shipped
        # each record file read once (records are written once): its stat, id and fields
        self._seen: dict[str, tuple[Stamp, str, ManifestFields | ManifestError]] = {}
        self._seqs: dict[str, int | None] = {}  # each name in chain/ parsed once: its seq
        self._newest: tuple[int, str] | None = None  # the last listing's newest: seq, name

    def _records(self) -> list[tuple[int, Path]]:
        return [(seq, self.chain_dir / e.name) for seq, e in self._scan()]

    def _is_newest(self, seq: int) -> bool:
        """Whether record ``seq`` is the newest in chain/. The newest of the last listing
        answers while its file is still there (records are only ever added with a higher
        number, so the newest now is that one or newer); else chain/ is listed again (a
        chain set aside and begun again, say)."""
        known = self._newest
        if known is None or seq > known[0] or not (self.chain_dir / known[1]).exists():
            self._scan()
            known = self._newest
        return known is None or seq >= known[0]  # none listed: keep it

    def _scan(self) -> list[tuple[int, os.DirEntry[str]]]:
        """The chain records, oldest first, in one listing of the directory (a shift's outbox
        holds thousands, looked at every step); each entry stats its file when asked."""
        found = []
        seqs = self._seqs
        try:
            with os.scandir(self.chain_dir) as it:
                for e in it:
                    if e.name in seqs:
                        seq = seqs[e.name]
                    else:
                        parsed = parse_chain_file_name(e.name)
                        seq = seqs[e.name] = parsed[0] if parsed is not None else None
                    if seq is not None:
                        found.append((seq, e))
        except (FileNotFoundError, NotADirectoryError):
            self._newest = None
            return []
        if len(seqs) > 2 * len(found) + 64:  # the gone, forgotten (now and then: a step
            listed = {e.name for _, e in found}  # deletes one), from both caches by name
            self._seqs = {n: q for n, q in seqs.items() if n in listed}
            self._seen = {n: v for n, v in self._seen.items() if n in listed}
        found.sort(key=lambda r: r[0])
        self._newest = (found[-1][0], found[-1][1].name) if found else None
        return found

    def _read(
        self, record: Path, key: Stamp | None = None
    ) -> tuple[str, ManifestFields | ManifestError] | None:
        """The record's segment id and its fields (or why it cannot be read), read again
        only when the file is not the one read before (``key``: its stat, if known; None:
        it is gone)."""
        try:
            if key is None:
                key = _stamp_of(record.stat())
            seen = self._seen.get(record.name)
            if seen is not None and seen[0] == key:
                return seen[1], seen[2]
            data = record.read_bytes()
        except FileNotFoundError:
            return None
        try:
            fields: ManifestFields | ManifestError = self.verifier.parse(data)
        except ManifestError as exc:
            fields = exc
        sid = segment_id_for(data)
        self._seen[record.name] = (key, sid, fields)
        return sid, fields

    def finished(self) -> list[OutboxSegment]:
        return list(self.ready())

    def ready(self) -> Iterator[OutboxSegment]:
        """``finished``, each record read (and its files looked for) only as the caller asks
        for it: a step ships the first one, and a shift's outbox holds thousands."""
        records = self._scan()  # first: the files the records name were written before them
        newest = records[-1][0] if records else None
        for seq, entry in records:
            segment = self._ready_one(seq, entry, newest)
            if segment is not None:
                yield segment

    def _ready_one(
        self, seq: int, entry: os.DirEntry[str], newest: int | None
    ) -> OutboxSegment | None:
        """The record as a segment to ship; None if it is gone, shipped or unreadable."""
        path = self.chain_dir / entry.name
        read = self._read(path, _stamp(entry))
        if read is None:
            return None
        sid, f = read
        name = _blob_name(f)
        if os.path.isfile(os.path.join(self.receipts, f"{sid}.json")):
            # shipped earlier and kept as the newest: now it can go (a blob still here is
            # a delete a crash cut short: ``reconcile`` finishes it, record first)
            if seq != newest and not self._has_blob(name):
                path.unlink(missing_ok=True)
            return None
        if isinstance(f, ManifestError):
            if path.name not in self.unreadable:
                log.error("outbox: cannot ship %s: %s", path.name, f)
            self.unreadable[path.name] = str(f)
            return None
        blob = None
        tail_path, tail = None, None
        if f.record_type == "manifest":
            blob = self.blobs_dir / name
            if not self._has_blob(name):
                self.unreadable[path.name] = f"stored file {blob.name} is missing"
                return None
            t = f.raw.get("unsigned_tail")
            if isinstance(t, dict) and self._has_blob(str(t["file"])):
                tail_path = self.blobs_dir / str(t["file"])
                tail = (str(t["file"]), int(t["size"]), str(t["sha256"]))
        return OutboxSegment(seq, path, blob, tail_path, tail)

    def _has_blob(self, name: str) -> bool:
        """Whether the outbox holds the stored file ``name`` (a record's names have no
        separator: crypto/records.py). Only a file that is not there is absent: a card that
        cannot say (EIO) fails the step, which tries the same record again later, rather
        than letting the records behind it ship first."""
        if not name:
            return False
        try:
            return stat.S_ISREG(os.stat(os.path.join(self.blobs_dir, name)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def delete(self, segment: OutboxSegment, receipt: SignedReceipt) -> None:
        self.keep_receipt(receipt)
        self.remove(segment)

    def delete_unsigned(self, path: Path, receipt: SignedUnsignedReceipt) -> None:
        """Keep the dock's receipt for set-aside unsigned bytes, then remove them."""
        self.keep_receipt(receipt, f"{receipt.receipt.segment_id}.unsigned.json")
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)

    def keep_receipt(
        self, receipt: SignedReceipt | SignedUnsignedReceipt, name: str | None = None
    ) -> None:
        """Keep ``receipt`` durably, before anything it vouches for is deleted."""
        self.receipts.mkdir(parents=True, exist_ok=True)
        final = self.receipts / (name or f"{receipt.receipt.segment_id}.json")
        tmp = final.with_name(final.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(canonical_json(receipt.to_json()) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(self.receipts)

    def remove(self, segment: OutboxSegment) -> None:
        """Remove a segment whose receipt is kept: its blob, then (unless newest) its record.
        The unlinks are not fsync'd (two directory syncs a segment less, which an SD card
        feels): a crash that undoes them leaves files whose kept receipt names them, and
        ``reconcile`` deletes them again at the shipper's start (``finished`` skips them)."""
        if segment.blob_path is not None:
            segment.blob_path.unlink(missing_ok=True)
        if not self._is_newest(segment.seq):
            segment.manifest_path.unlink(missing_ok=True)

    def reconcile(self, dock_public_key: bytes, device_id: str) -> list[str]:
        """At start: finish the deletes a crash cut short. A segment still here although a
        receipt for it was kept is deleted when the receipt is valid (signed by the pinned
        dock key, for this device, this record and the exact bytes here); otherwise it stays
        and is reported. Returns the names of the stored files deleted. Only the receipts of
        the records still here are read (the kept ones grow with every shift), unless a
        stored file has lost its record."""
        deleted: list[str] = []
        named: set[str] = set()
        for seq, path in self._records():
            try:
                data = path.read_bytes()
                f = self.verifier.parse(data)
            except (OSError, ManifestError):
                continue
            blob = self.blobs_dir / str(f.raw.get("file", "")) if f.raw.get("file") else None
            if blob is not None:
                named.add(blob.name)
            r = kept_receipt(self.receipts, segment_id_for(data), dock_public_key, device_id)
            if r is None:
                continue
            if blob is not None and blob.is_file():
                if _digest_file(blob) != (r.stored_digest, r.stored_size):
                    log.error("outbox: %s is not the bytes its receipt names: kept", blob.name)
                    continue
                deleted.append(blob.name)
            self.remove(OutboxSegment(seq, path, blob))
        deleted += self._reconcile_orphans(named, dock_public_key, device_id)
        for name in deleted:
            log.info("outbox: %s had shipped (its receipt was kept): deleted now", name)
        return deleted

    def _reconcile_orphans(
        self, named: set[str], dock_public_key: bytes, device_id: str
    ) -> list[str]:
        """Stored files whose record went before them (a crash under an older shipper),
        deleted when a kept receipt names their exact bytes (all kept receipts read, by
        their bytes: only when there is such a file)."""
        blobs_dir = self.blobs_dir
        found = sorted(blobs_dir.glob("*" + SEG_EXT)) if blobs_dir.is_dir() else []
        orphans = [b for b in found if b.name not in named and b.is_file()]
        if not orphans:
            return []
        valid = valid_receipts(self.receipts, dock_public_key, device_id)
        by_bytes = {(r.stored_digest, r.stored_size) for r in valid.values()}
        deleted = []
        for blob in orphans:
            if _digest_file(blob) in by_bytes:
                blob.unlink()
                fsync_dir(blobs_dir)
                deleted.append(blob.name)
        return deleted


def kept_receipt(
    receipts_dir: Path, segment_id: str, dock_public_key: bytes, device_id: str
) -> Receipt | None:
    """The receipt kept for ``segment_id`` if the pinned dock key signed it for this device
    and this segment (None: none kept, unreadable, or not valid)."""
    return _valid_receipt(Path(receipts_dir) / f"{segment_id}.json", dock_public_key, device_id)


def valid_receipts(
    receipts_dir: Path, dock_public_key: bytes, device_id: str
) -> dict[str, Receipt]:
    """The receipts kept in ``receipts_dir`` that the pinned dock key signed for this device,
    by segment id (a file that is unreadable or not valid is left out)."""
    out: dict[str, Receipt] = {}
    if not Path(receipts_dir).is_dir():
        return out
    for p in Path(receipts_dir).glob("*.json"):
        rc = _valid_receipt(p, dock_public_key, device_id)
        if rc is not None:
            out[rc.segment_id] = rc
    return out


def _valid_receipt(path: Path, dock_public_key: bytes, device_id: str) -> Receipt | None:
    """The receipt in ``path`` (``<segment id>.json``) if the pinned dock key signed it for
    this device and the segment its name says; None if unreadable or not valid."""
    try:
        r = SignedReceipt.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return None
    rc = r.receipt
    if r.verify(dock_public_key) and rc.device_id == device_id and path.stem == rc.segment_id:
        return rc
    return None


def _open_blob(path: Path | None) -> BinaryIO:
    return io.BytesIO(b"") if path is None else open(path, "rb")  # noqa: SIM115


def _digest_file(path: Path | None) -> tuple[str | None, int]:
    """A stored file's stored digest and size; for a record with no stored file (``None``)
    the SHA-256 of nothing, as its receipt names (docs/evidence-format.md, "Receipt")."""
    if path is None:
        return EMPTY_SHA256, 0
    d = digest_of(path)
    return d.hexdigest(), d.size


def _hash_file(path: Path | None) -> tuple[str, int]:
    """SHA-256 and size of set-aside (unsigned) bytes."""
    h = hashlib.sha256()
    n = 0
    with _open_blob(path) as f:
        while block := f.read(READ_BLOCK):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n
