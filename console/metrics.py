"""Health for operators: what ``/healthz`` answers and what ``/metrics`` (Prometheus) exposes.

Read from the store when asked (a scrape, a health probe), never kept in globals: each console
app has its own ``CollectorRegistry`` (``registry_of``) holding one ``DockCollector``. Counts of
uploads come from the custody log (``received``: a segment stored and receipted; ``rejected``:
a segment that failed the dock's checks), tallied incrementally, so a scrape reads only the
entries written since the last one.

``disk_usage`` is injectable (tests give a full disk); by default ``shutil.disk_usage`` of the
store's folder.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from console.core import Console
from dock.activity import ActiveUpload
from dock.store import StoreError

DiskUsage = Callable[[Path], Any]  # shutil.disk_usage's shape: .total, .used, .free
FULL_FRACTION = 0.01  # free space below this share of the disk: the dock is not healthy
PAGE = 1000  # custody entries read per query while tallying


@dataclass
class CustodyTally:
    """Counts of custody actions, brought up to date from the log's new entries on each
    ``update`` (thread-safe)."""

    after: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, store: Any) -> None:
        with self._lock:
            while True:
                entries = store.custody_log(after=self.after, limit=PAGE)
                for e in entries:
                    self.actions[e.action] += 1
                    if e.action == "received":
                        self.bytes_received += int(e.detail.get("size") or 0)
                    self.after = e.index
                if len(entries) < PAGE:
                    return


@dataclass(frozen=True)
class DockFacts:
    """The dock's state at one moment, for /healthz and /metrics."""

    cameras: int
    cameras_revoked: int
    segments_stored: int
    bytes_stored: int
    open_uploads: int  # uploads begun on the dock and not finished
    open_upload_bytes: int
    reported_queued_segments: int  # what cameras last said they still hold to upload
    reported_queued_bytes: int
    uploading: int  # uploads moving now (chunks lately)
    stalled: int  # of those, not moved for config.stalled_upload_s
    log_size: int


def collect_facts(console: Console) -> DockFacts:
    """Read the store (StoreError or sqlite3.Error when it cannot be read)."""
    store = console.dock.store
    devices = store.list_devices()
    segments = stored = opened = opened_bytes = queued = queued_bytes = 0
    for d in devices:
        held = store.held_segments(d.device_id)
        segments += len(held)
        stored += sum(h.stored_size for h in held)
        n, size = store.open_uploads(d.device_id)
        opened += n
        opened_bytes += size
        report = store.device_report(d.device_id) or {}
        queued += int(report.get("queued_segments") or 0)
        queued_bytes += int(report.get("queued_bytes") or 0)
    active = _active(console)
    return DockFacts(
        cameras=sum(1 for d in devices if not d.revoked),
        cameras_revoked=sum(1 for d in devices if d.revoked),
        segments_stored=segments,
        bytes_stored=stored,
        open_uploads=opened,
        open_upload_bytes=opened_bytes,
        reported_queued_segments=queued,
        reported_queued_bytes=queued_bytes,
        uploading=len(active),
        stalled=sum(1 for a in active if a.stalled),
        log_size=store.log_size(),
    )


def _active(console: Console) -> list[ActiveUpload]:
    """Uploads in progress (dock/activity.py), each with its ``stalled`` flag."""
    return console.dock.activity.snapshot(console.now_us(), console.config.stalled_upload_s)


# --------------------------------------------------------------------------- health


@dataclass(frozen=True)
class Health:
    ok: bool
    store_readable: bool
    log_size: int | None
    disk_free_bytes: int | None
    disk_total_bytes: int | None
    problems: list[str]  # why not ok
    warnings: list[str]  # worth a look, still ok

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def health(console: Console, disk_usage: DiskUsage = shutil.disk_usage) -> Health:
    """Is the dock able to take footage: its store readable, its disk not full."""
    problems: list[str] = []
    warnings: list[str] = []
    log_size = None
    try:
        console.dock.store.list_devices()
        log_size = console.dock.store.log_size()
    except (StoreError, sqlite3.Error, OSError) as exc:
        problems.append(f"the store cannot be read: {exc}")
    free = total = None
    try:
        usage = disk_usage(console.store_dir)
        free, total = int(usage.free), int(usage.total)
    except OSError as exc:
        problems.append(f"the store's disk cannot be measured: {exc.strerror or exc}")
    if free is not None and total:
        if free < total * FULL_FRACTION:
            problems.append(f"the store's disk is full ({free} bytes free of {total})")
        elif free < total * console.config.disk_warn_fraction:
            warnings.append(f"the store's disk is low ({free} bytes free of {total})")
    return Health(
        ok=not problems,
        store_readable=log_size is not None,
        log_size=log_size,
        disk_free_bytes=free,
        disk_total_bytes=total,
        problems=problems,
        warnings=warnings,
    )


# --------------------------------------------------------------------------- metrics


class DockCollector(Collector):
    """The dock's metrics, read from the store at scrape time."""

    def __init__(self, console: Console, disk_usage: DiskUsage = shutil.disk_usage) -> None:
        self.console = console
        self.disk_usage = disk_usage
        self.tally = CustodyTally()

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only (the registry must not scrape to describe)

    def collect(self) -> Iterator[Metric]:
        store = self.console.dock.store
        try:
            self.tally.update(store)
            facts = collect_facts(self.console)
        except (StoreError, sqlite3.Error, OSError):
            yield _gauge("bwv_dock_store_readable", "1 when the store could be read", 0)
            return
        yield _gauge("bwv_dock_store_readable", "1 when the store could be read", 1)
        yield from self._counters()
        yield from _fact_gauges(facts)
        try:
            usage = self.disk_usage(self.console.store_dir)
        except OSError:
            return
        yield _gauge("bwv_dock_disk_free_bytes", "Free bytes on the store's disk", usage.free)
        yield _gauge("bwv_dock_disk_total_bytes", "Size of the store's disk", usage.total)

    def _counters(self) -> Iterator[Metric]:
        a = self.tally.actions
        yield _counter(
            "bwv_dock_uploads_completed",
            "Segments stored and receipted (custody: received)",
            a["received"],
        )
        yield _counter(
            "bwv_dock_uploads_rejected",
            "Uploaded segments the dock refused after checking them (custody: rejected)",
            a["rejected"],
        )
        yield _counter(
            "bwv_dock_verification_failures",
            "Segments that failed verification on arrival (custody: rejected)",
            a["rejected"],
        )
        yield _counter(
            "bwv_dock_bytes_received",
            "Bytes of segments stored (custody: received)",
            self.tally.bytes_received,
        )
        yield _counter("bwv_dock_gaps", "Gaps found in cameras' chains (custody: gap)", a["gap"])
        yield _counter(
            "bwv_dock_retention_deleted",
            "Records deleted under retention (custody: retention_deleted)",
            a["retention_deleted"],
        )


def _fact_gauges(f: DockFacts) -> Iterator[Metric]:
    yield _gauge("bwv_dock_cameras", "Enrolled cameras, not revoked", f.cameras)
    yield _gauge("bwv_dock_cameras_revoked", "Revoked cameras", f.cameras_revoked)
    yield _gauge("bwv_dock_segments_stored", "Records (segments) the dock holds", f.segments_stored)
    yield _gauge("bwv_dock_bytes_stored", "Bytes of the segments the dock holds", f.bytes_stored)
    queue = GaugeMetricFamily(
        "bwv_dock_queue_depth_segments",
        "Segments waiting: begun on the dock (dock) or held by cameras (reported)",
        labels=["where"],
    )
    queue.add_metric(["dock"], f.open_uploads)
    queue.add_metric(["cameras"], f.reported_queued_segments)
    yield queue
    qbytes = GaugeMetricFamily(
        "bwv_dock_queue_depth_bytes", "Bytes waiting, as the segments above", labels=["where"]
    )
    qbytes.add_metric(["dock"], f.open_upload_bytes)
    qbytes.add_metric(["cameras"], f.reported_queued_bytes)
    yield qbytes
    yield _gauge("bwv_dock_uploads_active", "Uploads moving now", f.uploading)
    yield _gauge("bwv_dock_uploads_stalled", "Uploads not moved lately", f.stalled)
    yield _gauge("bwv_dock_log_size", "Leaves in the dock's transparency log", f.log_size)


def _counter(name: str, doc: str, value: float) -> Metric:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


def new_registry(console: Console, disk_usage: DiskUsage = shutil.disk_usage) -> CollectorRegistry:
    """A registry of its own (no global state) with the dock's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DockCollector(console, disk_usage))
    return registry
