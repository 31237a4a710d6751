"""A dock (in process, no server) with a console over it, and cameras whose recordings it
received through the dock's own receiving path (verify, store, receipt, log leaf): for the
catalog and retention journeys. The clock is injected (``Clock``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from console.core import AUDITOR, INVESTIGATOR, SUPERVISOR, TECHNICIAN, Account, open_console
from dock.instance import open_dock
from dock.outbox import ChainOutbox
from dock.protocol import segment_id_for
from dock.receive import receive_segment
from dock.testing import OutboxDevice, declared_digest, segment_bytes

T0 = 1_800_000_000_000_000  # 2027-01-15 08:00:00 UTC
DAY = 86_400 * 1_000_000


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


def ship(dock, dev: OutboxDevice) -> None:
    """Everything in the camera's outbox received by the dock, as an upload would be."""
    store, now = dock.store, dock.clock()
    record = store.get_device(dev.device_id)
    for seg in ChainOutbox(dev.root).finished():
        manifest = seg.manifest_path.read_bytes()
        sid = segment_id_for(manifest)
        if store.upload_state(dev.device_id, sid) is not None:
            continue
        blob = seg.blob_path.read_bytes() if seg.blob_path else b""
        store.begin_upload(dev.device_id, sid, manifest, len(blob), declared_digest(blob), now)
        if blob:
            store.append_chunk(dev.device_id, sid, 0, blob)
        receive_segment(dock, record, sid)


class TimedDevice(OutboxDevice):
    """An ``OutboxDevice`` whose segments claim wall times: each segment one minute, the
    first starting at ``wall_us`` (moved on as segments are added)."""

    wall_us: int = T0 - DAY

    def add_segment(self, stored: bytes, recording_id: str = "rec1", segment_index=None):
        from crypto.manifest import manifest_fields
        from dock.testing import stored_parts

        index = sum(
            1 for r in self.records
            if r.type == "manifest" and r.record["recording_id"] == recording_id
        )  # fmt: skip
        name = f"{recording_id}_{index:04d}.bwvseg"
        (self.root / "segments").mkdir(exist_ok=True)
        (self.root / "segments" / name).write_bytes(stored)
        start, self.wall_us = self.wall_us, self.wall_us + 60_000_000
        rec, _ = self.chain.append(
            "manifest",
            manifest_fields(
                firmware_version="test", recording_id=recording_id, segment_index=index,
                start_us=0, end_us=1, wall_start_us=start, wall_end_us=self.wall_us,
                wall_quality="unsynced", trigger={}, file=name,
                agency_key_id=self.agency_key_id, **stored_parts(stored), recovered=False,
                unsigned_tail=None,
            ),
        )  # fmt: skip
        self.records.append(rec)
        return rec


def enrol(dock, root: Path, device_id: str) -> OutboxDevice:
    dev = TimedDevice(root / device_id, device_id, seed=hashlib.sha256(device_id.encode()).digest())
    token = hashlib.sha256(device_id.encode() + b"token").hexdigest()
    dock.store.add_token(token, device_id, dock.clock(), dock.clock() + DAY, "technician")
    dock.store.enroll(device_id, dev.public_key, token, dock.clock())
    return dev


def record(
    dock, dev: TimedDevice, recording_id: str, segments: int = 2, at_us: int | None = None
) -> None:
    """A recording of ``segments`` one-minute segments (starting ``at_us``), received."""
    if at_us is not None:
        dev.wall_us = at_us
    for i in range(segments):
        dev.add_segment(segment_bytes(2000 + i, sum(recording_id.encode()) + i), recording_id)
    dev.end_recording(recording_id)
    ship(dock, dev)


@dataclass
class World:
    dock: object
    console: object
    clock: Clock
    root: Path
    cams: dict[str, OutboxDevice]

    def close(self) -> None:
        self.console.db.close()
        if self.dock.translog is not None:
            self.dock.translog.close()
        self.dock.store.close()


def world(tmp_path: Path) -> World:
    """Camera cam-a (officer A: recordings a1 three days ago, a2 yesterday) and cam-b
    (officer B: b1 yesterday); each of two one-minute segments and an end record."""
    clock = Clock()
    dock = open_dock(tmp_path / "dock", clock=clock)
    console = open_console(dock, tmp_path / "dock")
    cams = {d: enrol(dock, tmp_path, d) for d in ("cam-a", "cam-b")}
    record(dock, cams["cam-a"], "a1", at_us=T0 - 3 * DAY)
    record(dock, cams["cam-a"], "a2", at_us=T0 - DAY)
    record(dock, cams["cam-b"], "b1", at_us=T0 - DAY)
    return World(dock, console, clock, tmp_path, cams)


# the people (helper A's accounts are not needed for these journeys)
SUP_A = Account("sue", frozenset({SUPERVISOR}), frozenset({"cam-a"}))
SUP_A2 = Account("sam", frozenset({SUPERVISOR}), frozenset({"cam-a"}))
SUP_B = Account("bob", frozenset({SUPERVISOR}), frozenset({"cam-b"}))
INV = Account("ivy", frozenset({INVESTIGATOR}))
INV2 = Account("ian", frozenset({INVESTIGATOR}))
AUD = Account("ada", frozenset({AUDITOR}))
TECH = Account("tom", frozenset({TECHNICIAN}))

PEOPLE = (SUP_A, SUP_A2, SUP_B, INV, INV2, AUD, TECH)


def catalog(w: World):
    """The catalog over the world's console, knowing the people above as its accounts."""
    from console.catalog import Catalog

    names = {p.name for p in PEOPLE}
    return Catalog(w.console, account_exists=lambda name: name in names)
