"""The camera's report to its dock (``POST /v1/device/report``, dock/routes/report.py): its
firmware version, battery (where it has a gauge), the storage free where it keeps footage
(``statvfs`` of the outbox) and what waits there to ship. The shipper sends it at the start
of each shipping round, once more when a round has emptied the queue, and at least every
``every_s`` while docked (``Reporter.due``).

Best effort: a dock that does not know the endpoint (an older dock: 404), refuses the report
or cannot be reached never stops shipping; a 404 is not asked again for ``unsupported_s``.
The report holds no footage and no key: counts, sizes, a version string and a time.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from crypto.records import RecordError, parse_line
from dock.client import DockClient, DockError, DockRefused
from dock.outbox import Outbox, OutboxSegment

log = logging.getLogger("bwv.shipper")

FIRMWARE = re.compile(r"[\x20-\x7e]{1,64}")  # what the dock takes (dock/routes/models.py)


class BatteryGauge(Protocol):
    def percent(self) -> int | None:
        """The charge left, 0..100, or None when it cannot be read now."""
        ...


@dataclass(frozen=True)
class FixedBattery:
    """A gauge that always reads the same (the simulator's twin, tests)."""

    value: int

    def percent(self) -> int | None:
        return self.value


@dataclass(frozen=True)
class DrainingBattery:
    """A simulated gauge: full at ``full_at_us`` on ``clock``, losing ``per_hour`` % an hour."""

    clock: Callable[[], int]
    full_at_us: int
    per_hour: float = 8.0

    def percent(self) -> int | None:
        hours = max(0, self.clock() - self.full_at_us) / 3.6e9
        return max(0, min(100, round(100 - self.per_hour * hours)))


def storage_of(path: Path) -> tuple[int, int] | None:
    """Free and total bytes of the file system holding ``path`` (its nearest existing
    folder; None: cannot tell)."""
    for p in (path, *path.parents):
        try:
            st = os.statvfs(p)
        except FileNotFoundError:
            continue
        except (OSError, AttributeError):  # unreadable; no statvfs on this system
            return None
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return None


def _record(seg: OutboxSegment) -> dict[str, Any]:
    """The chain record's signed fields (read without checking: this is telemetry)."""
    try:
        return parse_line(seg.manifest_path.read_bytes())[0]
    except (OSError, RecordError):
        return {}


def _firmware_of(segs: list[OutboxSegment]) -> str | None:
    """The firmware version the newest records name (the camera's time records name none)."""
    for seg in reversed(segs[-16:]):
        fw = _record(seg).get("firmware_version")
        if isinstance(fw, str) and FIRMWARE.fullmatch(fw):
            return fw
    return None


def _wall_of(record: dict[str, Any]) -> int | None:
    for key in ("wall_start_us", "device_wall_us", "wall_end_us"):
        v = record.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def _size(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Reporter:
    """Builds the camera's report and decides when it is due (one per shipper; not
    thread-safe, like the shipper that drives it)."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        firmware_version: str | None = None,
        battery: BatteryGauge | None = None,
        storage_path: Path | None = None,
        every_s: float = 60.0,
        unsupported_s: float = 3600.0,
    ) -> None:
        self.outbox = outbox
        ok = firmware_version is not None and FIRMWARE.fullmatch(firmware_version)
        self.firmware_version = firmware_version if ok else None  # else: from the records
        self.battery = battery
        root = getattr(outbox, "root", None)
        self.storage_path = storage_path or (Path(root) if root is not None else None)
        self.every_s = every_s
        self.unsupported_s = unsupported_s
        self.sent_at_us: int | None = None
        self.sent: dict[str, Any] | None = None  # the last report the dock took
        self.unsupported_until_us = 0
        self.last_error: str | None = None

    def build(self, queued: list[OutboxSegment] | None = None) -> dict[str, Any]:
        """The report as it stands now (``queued``: the outbox's records, if already read)."""
        segs = self.outbox.finished() if queued is None else queued
        if self.firmware_version is None:
            self.firmware_version = _firmware_of(segs)
        storage = storage_of(self.storage_path) if self.storage_path is not None else None
        return {
            "firmware_version": self.firmware_version,
            "battery_percent": self._battery(),
            "storage_free_bytes": storage[0] if storage else 0,
            "storage_total_bytes": storage[1] if storage else None,
            "queued_segments": len(segs),
            "queued_bytes": sum(_size(s.blob_path) for s in segs),
            "oldest_queued_wall_us": _wall_of(_record(segs[0])) if segs else None,
        }

    def _battery(self) -> int | None:
        if self.battery is None:
            return None
        try:
            value = self.battery.percent()
        except OSError:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return max(0, min(100, value))

    def due(self, now_us: int, round_start: bool, emptied: bool) -> bool:
        """Whether to send now: a round starts, a round emptied the queue, or ``every_s``
        passed since the last report (never while the dock said it has no such endpoint)."""
        if now_us < self.unsupported_until_us:
            return False
        if round_start or emptied or self.sent_at_us is None:
            return True
        return now_us - self.sent_at_us >= self.every_s * 1_000_000

    def send(
        self, client: DockClient, now_us: int, queued: list[OutboxSegment] | None = None
    ) -> bool:
        """Send the report; True if the dock took it. Never raises for the dock's sake."""
        try:
            report = self.build(queued)
            client.report(report)
        except DockRefused as exc:
            if exc.status == 404:  # an older dock: ask again much later
                self.unsupported_until_us = now_us + int(self.unsupported_s * 1_000_000)
            return self._failed(now_us, f"refused ({exc.status}): {exc.detail}")
        except (DockError, OSError, ValueError) as exc:
            return self._failed(now_us, str(exc))
        self.sent_at_us, self.sent, self.last_error = now_us, report, None
        return True

    def _failed(self, now_us: int, why: str) -> bool:
        if why != self.last_error:
            log.info("device report not sent (shipping goes on): %s", why)
        self.last_error = why
        self.sent_at_us = now_us  # not again before ``every_s``: it is only telemetry
        return False
