"""The fleet as the people who run the dock see it: one row per camera (``camera_rows``:
enrolment, firmware, last seen, clock, battery, storage, queue, revocation) and one per camera
for the uploads page (``upload_rows``: queued, uploading with progress and rate, receipted
recently, stalled or failing and why). Data only: the console renders it.

Sources: the store (devices, their latest report: dock/store_reports.py, the ``received``
custody entries, the newest held record's firmware) and the dock's ``UploadActivity``
(dock/activity.py: what is under way now, the last refusal)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from dock.activity import ActiveUpload, UploadActivity
from dock.store import DeviceRecord, Store, manifest_key
from dock.verify import ChainRecordVerifier, ManifestError

RECENT_RECEIPTS = 5  # receipted segments shown per camera
DOCKED_WITHIN_S = 180  # a camera heard from this recently counts as docked
FIRMWARE_LOOKBACK = 8  # held records read back for a firmware version when none is reported


@dataclass(frozen=True)
class CameraRow:
    device_id: str
    key_id: str
    enrolled_at_us: int
    key_store: str  # "file" | "tpm" (dock.store.DeviceRecord)
    attested_by: str | None  # the TPM maker's CA that vouched for a key held in a TPM
    firmware_version: str | None  # reported, else the newest held record's, else None
    firmware_source: str | None  # "report" | "record" | None
    last_seen_us: int | None  # the last request, report, time sync or receipt
    clock_offset_us: int | None  # dock − camera at the last time sync
    clock_synced_at_us: int | None
    clock_quality: str  # "synced 3 min ago" | "never"
    battery_percent: int | None
    storage_free_bytes: int | None
    storage_total_bytes: int | None
    queued_segments: int | None  # as last reported (None: never reported)
    queued_bytes: int | None
    oldest_queued_wall_us: int | None
    reported_at_us: int | None  # when the dock received the last report
    revoked: bool
    revoked_at_us: int | None
    revoke_reason: str | None


@dataclass(frozen=True)
class ReceiptRow:
    segment_id: str
    seq: int | None
    recording_id: str | None
    size: int | None
    at_us: int
    record_type: str | None = None
    segment_index: int | None = None

    @property
    def record(self) -> str:
        """What was received, for a person: "segment 3", "end", "time sync"..."""
        if self.record_type == "manifest":
            return f"segment {self.segment_index}" if self.segment_index is not None else "segment"
        return (self.record_type or "record").replace("_", " ")


@dataclass(frozen=True)
class UploadRow:
    device_id: str
    docked: bool  # heard from within DOCKED_WITHIN_S
    last_seen_us: int | None
    queued_segments: int | None  # as last reported (None: never reported)
    queued_bytes: int | None
    oldest_queued_wall_us: int | None
    reported_at_us: int | None
    uploading: list[ActiveUpload] = field(default_factory=list)
    receipted: list[ReceiptRow] = field(default_factory=list)  # newest first
    stalled: bool = False  # an upload under way got no bytes for the threshold
    failing: bool = False  # the dock's last answer to it, since its last receipt, was a refusal
    reason: str | None = None  # why it is stalled or failing, for a person

    @property
    def state(self) -> str:
        """failing | stalled | uploading | queued | idle."""
        if self.failing:
            return "failing"
        if self.stalled:
            return "stalled"
        if self.uploading:
            return "uploading"
        if self.queued_segments:
            return "queued"
        return "idle"


def age_text(us: int) -> str:
    """A duration for a person: "45 s", "3 min", "2 h", "5 d"."""
    s = max(0, us) // 1_000_000
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def clock_quality(device: DeviceRecord, now_us: int) -> str:
    if device.time_synced_at_us is None:
        return "never"
    return f"synced {age_text(now_us - device.time_synced_at_us)} ago"


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _firmware_of_records(store: Store, device_id: str) -> str | None:
    """The firmware version the newest held records name (a camera's time records name
    none; a record deleted under retention is skipped)."""
    held = store.held_segments(device_id)
    parse = ChainRecordVerifier().parse
    for seg in reversed(held[-FIRMWARE_LOOKBACK:]):
        with contextlib.suppress(OSError, ManifestError, ValueError):
            with store.open_object(manifest_key(device_id, seg.segment_id)) as f:
                version = parse(f.read()).raw.get("firmware_version")
            if isinstance(version, str):
                return version
    return None


def _last_seen(
    device: DeviceRecord,
    activity: UploadActivity,
    report: dict[str, Any] | None,
    receipts: list[Any],
) -> int | None:
    times = [
        activity.last_seen_us(device.device_id),
        report.get("received_at_us") if report else None,
        device.time_synced_at_us,
        receipts[0].at_us if receipts else None,
    ]
    known = [t for t in times if isinstance(t, int)]
    return max(known) if known else None


def camera_row(
    store: Store, activity: UploadActivity, device: DeviceRecord, now_us: int
) -> CameraRow:
    report = store.device_report(device.device_id)
    r = report or {}
    firmware = r.get("firmware_version") if isinstance(r.get("firmware_version"), str) else None
    source = "report" if firmware else None
    if firmware is None:
        firmware = _firmware_of_records(store, device.device_id)
        source = "record" if firmware else None
    return CameraRow(
        device_id=device.device_id,
        key_id=device.key_id,
        enrolled_at_us=device.enrolled_at_us,
        key_store=device.key_store,
        attested_by=device.attested_by,
        firmware_version=firmware,
        firmware_source=source,
        last_seen_us=_last_seen(
            device, activity, report, store.recent_receipts(device.device_id, 1)
        ),
        clock_offset_us=device.time_offset_us,
        clock_synced_at_us=device.time_synced_at_us,
        clock_quality=clock_quality(device, now_us),
        battery_percent=_int_or_none(r.get("battery_percent")),
        storage_free_bytes=_int_or_none(r.get("storage_free_bytes")),
        storage_total_bytes=_int_or_none(r.get("storage_total_bytes")),
        queued_segments=_int_or_none(r.get("queued_segments")),
        queued_bytes=_int_or_none(r.get("queued_bytes")),
        oldest_queued_wall_us=_int_or_none(r.get("oldest_queued_wall_us")),
        reported_at_us=_int_or_none(r.get("received_at_us")),
        revoked=device.revoked,
        revoked_at_us=device.revoked_at_us,
        revoke_reason=device.revoke_reason,
    )


def camera_rows(store: Store, activity: UploadActivity, now_us: int) -> list[CameraRow]:
    """Every enrolled camera, revoked ones included (``revoked``), by device id."""
    return [camera_row(store, activity, d, now_us) for d in store.list_devices()]


def upload_rows(
    store: Store, activity: UploadActivity, now_us: int, stalled_s: float = 60.0
) -> list[UploadRow]:
    """One row per camera not revoked (and per revoked one with uploads under way)."""
    under_way: dict[str, list[ActiveUpload]] = {}
    for up in activity.snapshot(now_us, stalled_s):
        under_way.setdefault(up.device_id, []).append(up)
    return [
        _upload_row(store, activity, d, under_way.get(d.device_id, []), now_us)
        for d in store.list_devices()
        if not d.revoked or d.device_id in under_way
    ]


def _upload_row(
    store: Store,
    activity: UploadActivity,
    device: DeviceRecord,
    uploading: list[ActiveUpload],
    now_us: int,
) -> UploadRow:
    dev = device.device_id
    report = store.device_report(dev) or {}
    receipts = store.recent_receipts(dev, RECENT_RECEIPTS)
    last_seen = _last_seen(device, activity, report or None, receipts)
    refusal = activity.last_refusal(dev)
    done = activity.last_completed_us(dev)
    failing = refusal is not None and (done is None or refusal.at_us > done)
    stalled = [u for u in uploading if u.stalled]
    reason = None
    if failing and refusal is not None:
        reason = f"refused {age_text(now_us - refusal.at_us)} ago: {refusal.text()}"
    elif stalled:
        u = stalled[0]
        reason = (
            f"no bytes for {age_text(now_us - u.last_chunk_us)} ({u.offset} of {u.size} bytes held)"
        )
    return UploadRow(
        device_id=dev,
        docked=last_seen is not None and now_us - last_seen <= DOCKED_WITHIN_S * 1_000_000,
        last_seen_us=last_seen,
        queued_segments=_int_or_none(report.get("queued_segments")),
        queued_bytes=_int_or_none(report.get("queued_bytes")),
        oldest_queued_wall_us=_int_or_none(report.get("oldest_queued_wall_us")),
        reported_at_us=_int_or_none(report.get("received_at_us")),
        uploading=uploading,
        receipted=[
            ReceiptRow(
                r.segment_id,
                r.seq,
                r.recording_id,
                r.size,
                r.at_us,
                getattr(r, "record_type", None),
                getattr(r, "segment_index", None),
            )
            for r in receipts
        ],
        stalled=bool(stalled),
        failing=failing,
        reason=reason,
    )
