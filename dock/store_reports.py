"""The embedded store's device reports (``DeviceReports``): the latest report of each camera
(firmware, battery, storage, what it has queued), kept in the index's ``device_reports``
table with when the dock received it, and the recent receipts of a device (its ``received``
custody entries). Reports are telemetry: no custody event, no leaf of the transparency log;
a newer report replaces the one before."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dock.store_index import StoreIndex

# the fields a report holds (dock/routes/models.py ``DeviceReport`` checks them)
REPORT_FIELDS = (
    "firmware_version",
    "battery_percent",
    "storage_free_bytes",
    "storage_total_bytes",
    "queued_segments",
    "queued_bytes",
    "oldest_queued_wall_us",
)


@dataclass(frozen=True)
class RecentReceipt:
    """One segment the dock received from a device (its ``received`` custody entry)."""

    segment_id: str
    seq: int | None
    recording_id: str | None
    size: int | None
    at_us: int
    log_index: int
    record_type: str | None = None  # manifest (a segment), end, time_sync, clock_step...
    segment_index: int | None = None


class DeviceReports(StoreIndex):
    """``record_report``, ``device_report`` and ``recent_receipts`` (dock.store.Store)."""

    def record_report(self, device_id: str, report: dict[str, Any], now_us: int) -> None:
        kept = {k: report.get(k) for k in REPORT_FIELDS}
        # telemetry, replaced by the next report: not worth a wait for the disk (a power cut
        # may take it, the dock's next durable commit keeps it)
        with self._tx(durable=False) as db:
            db.execute(
                "INSERT INTO device_reports(device_id, received_at_us, report) VALUES(?,?,?)"
                " ON CONFLICT(device_id) DO UPDATE SET"
                " received_at_us=excluded.received_at_us, report=excluded.report",
                (device_id, now_us, json.dumps(kept, sort_keys=True)),
            )

    def device_report(self, device_id: str) -> dict[str, Any] | None:
        rows = self._q(
            "SELECT received_at_us, report FROM device_reports WHERE device_id=?", (device_id,)
        )
        if not rows:
            return None
        report: dict[str, Any] = json.loads(rows[0][1])
        return {**report, "received_at_us": int(rows[0][0])}

    def recent_receipts(self, device_id: str, limit: int = 10) -> list[RecentReceipt]:
        rows = self._q(
            "SELECT idx, at_us, segment_id, detail FROM custody_log"
            " WHERE action='received' AND device_id=? ORDER BY idx DESC LIMIT ?",
            (device_id, limit),
        )
        out = []
        for idx, at_us, segment_id, detail in rows:
            d = json.loads(detail)
            out.append(
                RecentReceipt(
                    segment_id,
                    d.get("seq"),
                    d.get("recording_id"),
                    d.get("size"),
                    at_us,
                    idx,
                    d.get("record_type"),
                    d.get("segment_index"),
                )
            )
        return out
