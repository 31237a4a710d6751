"""What the dock holds, per device and per recording: the chain records it keeps
(``device_holdings``), each recording's verification state (``summarise_recording``,
``scan_recordings``: ``bwv dock status``) and the recording an export is asked for
(``find_recording``). ``open_store`` opens an existing dock store (never makes one)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dock.backends import BACKENDS_FILE
from dock.keys import DOCK_KEY_FILE, KeyFileError, load_or_create_signing_key
from dock.protocol import is_device_id
from dock.store import ChainReport, HeldSegment, chain_report, manifest_key
from dock.store_sqlite import INDEX_FILE, DirectoryStore
from dock.verify import ChainRecordVerifier, ManifestError, ManifestFields

_RECORDING_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# verification states of a recording at the dock (``bwv dock status``)
VERIFIED = "verified"  # every segment and the end record held, chain unbroken
GAP = "gap"  # a segment or chain record of the recording is missing, or the chain breaks
INCOMPLETE = "incomplete"  # no end record after the last segment (yet): more may come
ENDED_EARLY = "ended_early"  # whole, but ended by a fault or a crash, not by the officer
FAILED = "failed"  # (re-verified) stored bytes or records do not check out
DELETED = "deleted"  # deleted under retention (custody entries ``retention_deleted``)


class ExportError(Exception):
    """The export could not run (no such store or recording, a bad id, unreadable keys)."""


# --------------------------------------------------------------------------- store


def check_recording_id(recording_id: str) -> str:
    """``recording_id`` if it is one (crypto/FORMAT.md: ``[A-Za-z0-9_-]{1,64}``)."""
    if not isinstance(recording_id, str) or not _RECORDING_ID.fullmatch(recording_id):
        raise ExportError(
            f"not a recording id: {recording_id!r} (letters, digits, '-' and '_', "
            "1 to 64 of them; `bwv dock status` lists the recordings)"
        )
    return recording_id


def check_device_id(device_id: str) -> str:
    if not isinstance(device_id, str) or not is_device_id(device_id):
        raise ExportError(
            f"not a device id: {device_id!r} (letters, digits, '-', '_' and '.', "
            "starting with a letter or digit, at most 64)"
        )
    return device_id


def is_store(store_dir: Path) -> bool:
    """``store_dir`` holds a dock store: its key, and its index or the ``dock.toml`` naming
    the shared one (dock/backends.py)."""
    store_dir = Path(store_dir)
    if not (store_dir / DOCK_KEY_FILE).is_file():
        return False
    return (store_dir / INDEX_FILE).is_file() or (store_dir / BACKENDS_FILE).is_file()


def open_store(store_dir: Path) -> DirectoryStore:
    """The existing dock store in ``store_dir`` (never creates one: ``ExportError``), on the
    backends its ``dock.toml`` names (S3 objects, a shared index) or embedded."""
    from dock.backends import BackendsError
    from dock.backends import open_store as open_backends

    store_dir = Path(store_dir)
    if not is_store(store_dir):
        raise ExportError(
            f"{store_dir}: not a dock store (no {INDEX_FILE} and {DOCK_KEY_FILE}); "
            "give the directory `bwv dock serve --store` uses"
        )
    try:
        key = load_or_create_signing_key(store_dir / DOCK_KEY_FILE)
        return open_backends(store_dir, key)
    except KeyFileError as exc:
        raise ExportError(f"dock key: {exc}") from None
    except BackendsError as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        raise ExportError(f"{store_dir}: cannot open the dock store ({exc.strerror})") from None
    except Exception as exc:  # StoreError and the like: a damaged or unreachable index
        raise ExportError(f"{store_dir}: cannot open the dock index ({exc})") from None


def object_path(store: DirectoryStore, key: str) -> Path:
    """Where a ``DirectoryStore`` keeps object ``key`` (``objects/<device>/<name>``)."""
    root = getattr(store.objects, "root", store.root / "objects")
    return Path(root) / key


# --------------------------------------------------------------------------- holdings


@dataclass(frozen=True)
class HeldRecord:
    """One chain record the dock holds, with its parsed fields."""

    held: HeldSegment
    fields: ManifestFields

    @property
    def seq(self) -> int:
        return self.held.seq

    @property
    def is_segment(self) -> bool:
        return self.fields.record_type == "manifest"


@dataclass
class DeviceHoldings:
    device_id: str
    records: list[HeldRecord]  # readable chain records, by seq
    unreadable: list[HeldSegment]  # held, but the stored record cannot be read
    retired: list[Any] = field(default_factory=list)  # deleted under retention (RetiredRecord)

    @property
    def retired_seqs(self) -> list[int]:
        return [r.seq for r in self.retired]

    def chain(self) -> ChainReport:
        """The held chain's gaps and breaks (records deleted under retention are neither)."""
        return chain_report([r.held for r in self.records] + self.unreadable, self.retired_seqs)


def device_holdings(store: DirectoryStore, device_id: str) -> DeviceHoldings:
    verifier = ChainRecordVerifier()
    records, unreadable = [], []
    retired = store.retired_records(device_id) if hasattr(store, "retired_records") else []
    for held in store.held_segments(device_id):
        try:
            with store.open_object(manifest_key(device_id, held.segment_id)) as f:
                line = f.read()
            records.append(HeldRecord(held, verifier.parse(line)))
        except (OSError, ManifestError):
            unreadable.append(held)
    return DeviceHoldings(device_id, records, unreadable, retired)


@dataclass
class RecordingSummary:
    """What the dock holds of one recording, and what that says about it."""

    recording_id: str
    device_id: str
    segments: int  # segments held
    segment_indices: list[int]
    expected_segments: int | None  # from the last end record, when there is one
    first_seq: int
    last_seq: int
    end_reason: str | None
    stored_bytes: int
    wall_start_us: int | None
    state: str  # VERIFIED, GAP, INCOMPLETE, ENDED_EARLY (FAILED after re-verification)
    detail: str
    reverified: bool = False  # the state comes from re-checking the stored bytes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ranges(nums: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` as ``"1..3, 7"``."""
    ns = sorted(set(nums))
    parts: list[str] = []
    i = 0
    while i < len(ns):
        j = i
        while j + 1 < len(ns) and ns[j + 1] == ns[j] + 1:
            j += 1
        parts.append(str(ns[i]) if i == j else f"{ns[i]}..{ns[j]}")
        i = j + 1
    return ", ".join(parts)


def recording_records(records: list[HeldRecord], recording_id: str) -> list[HeldRecord]:
    """The records of ``recording_id`` and the device's time records signed among them (a
    time sync while it recorded: part of its stretch of the chain), by seq; with the time
    records right before it (the sync the camera took before it recorded: its lower bound
    in time), as long as no other record comes between."""
    mine = [r for r in records if r.fields.recording_id == recording_id]
    if not mine:
        return []
    lo, hi = mine[0].seq, mine[-1].seq
    timed = [r for r in records if r.fields.recording_id is None and lo < r.seq < hi]
    by_seq = {r.seq: r for r in records}
    s = lo - 1
    while s in by_seq and by_seq[s].fields.recording_id is None:
        timed.append(by_seq[s])
        s -= 1
    return sorted(mine + timed, key=lambda r: r.seq)


def summarise_recording(holdings: DeviceHoldings, recording_id: str) -> RecordingSummary | None:
    """The state of ``recording_id`` from the records the dock holds (each was verified on
    receipt: signature, stored digest, link to the record before it)."""
    mine = [r for r in holdings.records if r.fields.recording_id == recording_id]
    gone = [r for r in holdings.retired if r.recording_id == recording_id]
    if gone:
        return _deleted(holdings.device_id, recording_id, mine, gone)
    if not mine:
        return None
    segs = [r for r in mine if r.is_segment]
    ends = [r for r in mine if r.fields.record_type == "end"]
    indices = sorted({r.fields.segment_index for r in segs if r.fields.segment_index is not None})
    lo, hi = mine[0].seq, mine[-1].seq
    expected = ends[-1].fields.raw.get("segment_count") if ends else None
    want = max([*indices, (expected or 0) - 1])
    missing = [i for i in range(want + 1) if i not in indices]
    chain = holdings.chain()
    holes = [(a, b) for a, b in chain.gaps if lo < a and b < hi]
    breaks = [s for s in chain.breaks if lo < s <= hi]
    unreadable = [h.seq for h in holdings.unreadable if lo < h.seq < hi]
    problems = []
    if missing:
        problems.append(f"segment {_ranges(missing)} not at the dock")
    if holes:
        problems.append(
            "chain record "
            + _ranges(s for a, b in holes for s in range(a, b + 1))
            + " not at the dock"
        )
    if breaks:
        problems.append(f"chain broken at record {_ranges(breaks)}")
    if unreadable:
        problems.append(f"stored record {_ranges(unreadable)} unreadable")
    last_end = ends[-1] if ends else None
    if problems:
        state, detail = GAP, "; ".join(problems)
    elif last_end is None or (segs and segs[-1].seq > last_end.seq):
        state = INCOMPLETE
        detail = "no end-of-recording record after its last segment (still on the camera?)"
    elif last_end.fields.raw.get("reason") != "stopped" or last_end.fields.raw.get("recovered"):
        state = ENDED_EARLY
        why = last_end.fields.raw.get("reason")
        detail = f"ended: {why}" + (
            " (found open after a restart)" if last_end.fields.raw.get("recovered") else ""
        )
    else:
        state, detail = VERIFIED, "all segments and the end record held, chain unbroken"
    return RecordingSummary(
        recording_id=recording_id,
        device_id=holdings.device_id,
        segments=len(segs),
        segment_indices=indices,
        expected_segments=expected,
        first_seq=lo,
        last_seq=hi,
        end_reason=last_end.fields.raw.get("reason") if last_end else None,
        stored_bytes=sum(r.held.stored_size for r in segs),
        wall_start_us=segs[0].fields.raw.get("wall_start_us") if segs else None,
        state=state,
        detail=detail,
    )


def _deleted(
    device_id: str, recording_id: str, held: list[HeldRecord], gone: list[Any]
) -> RecordingSummary:
    """A recording deleted under retention (all of it, or, when a deletion was cut short,
    all but ``held``)."""
    seqs = [r.seq for r in held] + [r.seq for r in gone]
    indices = sorted({r.segment_index for r in gone if r.segment_index is not None})
    detail = f"deleted under retention ({len(gone)} records; custody entry {gone[0].log_index})"
    if held:
        detail += f"; deletion unfinished: {len(held)} records still held"
    return RecordingSummary(
        recording_id=recording_id,
        device_id=device_id,
        segments=sum(1 for r in held if r.is_segment),
        segment_indices=indices,
        expected_segments=None,
        first_seq=min(seqs),
        last_seq=max(seqs),
        end_reason=None,
        stored_bytes=sum(r.held.stored_size for r in held if r.is_segment),
        wall_start_us=None,
        state=DELETED,
        detail=detail,
    )


def _recording_ids(holdings: DeviceHoldings) -> list[str]:
    """The device's recordings, held or deleted under retention, in chain order."""
    seen: dict[int, str] = {}
    for r in holdings.records:
        if r.fields.recording_id is not None:
            seen.setdefault(r.seq, r.fields.recording_id)
    for g in holdings.retired:
        if g.recording_id is not None:
            seen.setdefault(g.seq, g.recording_id)
    return list(dict.fromkeys(rec for _, rec in sorted(seen.items())))


def scan_recordings(
    store: DirectoryStore, device_ids: list[str] | None = None
) -> tuple[list[RecordingSummary], dict[str, DeviceHoldings]]:
    """Every recording the dock holds (by device, then chain order), and the holdings."""
    ids = device_ids if device_ids is not None else [d.device_id for d in store.list_devices()]
    out: list[RecordingSummary] = []
    all_holdings = {}
    for dev in ids:
        holdings = device_holdings(store, dev)
        all_holdings[dev] = holdings
        for rec_id in _recording_ids(holdings):
            s = summarise_recording(holdings, rec_id)
            if s is not None:
                out.append(s)
    return out, all_holdings


def find_recording(
    store: DirectoryStore, recording_id: str, device_id: str | None = None
) -> tuple[DeviceHoldings, list[HeldRecord]]:
    """The holdings of the device that recorded ``recording_id`` and the recording's records.
    ``ExportError`` if no device (or more than one, without ``device_id``) holds it."""
    check_recording_id(recording_id)
    if device_id is not None:
        check_device_id(device_id)
        if store.get_device(device_id) is None:
            raise ExportError(f"no device {device_id!r} is enrolled at this dock")
        devices = [device_id]
    else:
        devices = [d.device_id for d in store.list_devices()]
    found = []
    for dev in devices:
        holdings = device_holdings(store, dev)
        mine = recording_records(holdings.records, recording_id)
        if mine:
            found.append((holdings, mine))
    if not found:
        where = f" from device {device_id}" if device_id else ""
        raise ExportError(
            f"the dock holds no recording {recording_id!r}{where} "
            "(`bwv dock status` lists the recordings it holds)"
        )
    if len(found) > 1:
        names = ", ".join(h.device_id for h, _ in found)
        raise ExportError(
            f"recording {recording_id!r} is held for several devices ({names}): name one "
            "with --device"
        )
    return found[0]
