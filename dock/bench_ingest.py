"""A dock taking in a fleet at once (a plain function; bench/fleet.py registers it):
``cameras`` simulated cameras, each with its own connection and the real shipper (signed
requests, checksummed chunks, verification, custody log, receipt), uploading together to one
dock on loopback over TLS. The same load is run on the embedded store and, in the same run,
on S3 Object Lock with a PostgreSQL index (dock/backends.py), so their ratio says what the
shared store costs.

``ingest`` measures wall time from the first byte to the last receipt (total MB/s of stored
bytes), the time from each segment's last chunk to its receipt (p99), and the dock's CPU
seconds per GB: the process's CPU time less the cameras' threads' own (each camera thread
reads its ``time.thread_time()``), so the dock's server, its worker threads and its store
(and, for S3, its client's threads) count, and the cameras do not. An object store's or
database server's own CPU, in their processes, is not counted.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from capture.clock import MonotonicClock
from dock.client import DockClient
from dock.receipts import SignedReceipt, UploadState
from dock.server import wall_clock_us
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, segment_bytes

MB = 1_000_000


@dataclass(frozen=True)
class IngestFigures:
    mb_s: float
    p99_receipt_s: float
    cpu_s_per_gb: float
    total_mb: float
    seconds: float


class _TimedClient(DockClient):
    """A camera's client that notes, for each upload, how long after its last byte was sent
    the receipt came (in the answer to the last chunk, or to an explicit completion)."""

    def __init__(self, *args: object, waits: list[float], **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._waits = waits
        self._sent_at = 0.0

    def _body(self, chunk: bytes) -> Iterable[memoryview]:
        return _Noted(super()._body(chunk), self)

    def sent(self) -> None:
        self._sent_at = time.perf_counter()

    def append(
        self, segment_id: str, offset: int, chunk: bytes, sha256: bytes | None = None
    ) -> UploadState:
        state = super().append(segment_id, offset, chunk, sha256)
        if state.receipt is not None:
            self._waits.append(time.perf_counter() - self._sent_at)
        return state

    def complete(self, segment_id: str) -> SignedReceipt:
        t = time.perf_counter()
        try:
            return super().complete(segment_id)
        finally:
            self._waits.append(time.perf_counter() - t)


class _Noted:
    """A request body (iterable again if the request is sent again) that tells its client
    when the transport asked for more after the last piece: every byte was sent."""

    def __init__(self, pieces: Iterable[memoryview], client: _TimedClient) -> None:
        self.pieces, self.client = pieces, client

    def __iter__(self) -> Iterator[memoryview]:
        yield from self.pieces
        self.client.sent()


def _ship_all(shipper: Shipper, segments: int, give_up_s: float = 600.0) -> None:
    """Drain the outbox, waiting out the dock's "busy, come back" answers as a camera does."""
    deadline = time.monotonic() + give_up_s
    while shipper.state.shipped < segments and time.monotonic() < deadline:
        reports = shipper.drain()
        if not reports or reports[-1].action == "idle":
            return
        retry = reports[-1].retry_at_us
        if retry is not None:
            wait_s = (retry - shipper.clock.now_us()) / 1e6
            time.sleep(max(0.0, min(1.0, wait_s)))


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ingest(
    store_dir: Path,
    work: Path,
    cameras: int = 32,
    segments: int = 2,
    segment_mb: float = 2.0,
    chunk_mb: int = 1,
) -> IngestFigures:
    """One run of the fleet's load on the dock at ``store_dir`` (a new store; its
    ``dock.toml`` already written for shared backends)."""
    dock = DockHarness(store_dir)
    try:
        devs = []
        for i in range(cameras):
            dev = OutboxDevice(work / f"cam{i:02d}" / "outbox", f"ingest-{i:02d}")
            creds = dock.enroll(dev)
            for s in range(segments):
                dev.add_segment(segment_bytes(int(segment_mb * MB), seed=i * 1000 + s), f"r{i}")
            devs.append((dev, creds))
        waits: list[float] = []
        camera_cpu: list[float] = []
        failures: list[str] = []
        start = threading.Barrier(cameras + 1)

        def ship(dev: OutboxDevice, creds: object) -> None:
            client = _TimedClient(
                dock.url, creds, wall_clock=wall_clock_us, timeout=300, waits=waits
            )
            shipper = Shipper(
                ChainOutbox(dev.root),
                client,
                MonotonicClock(),
                config=ShipperConfig(chunk_bytes=chunk_mb << 20, jitter=0.0),
            )
            start.wait()
            mine0 = time.thread_time()
            try:
                _ship_all(shipper, segments)
                if shipper.state.shipped < segments:
                    failures.append(f"{dev.device_id}: {shipper.state.shipped} of {segments}")
            finally:
                client.close()
                camera_cpu.append(time.thread_time() - mine0)

        threads = [threading.Thread(target=ship, args=d, daemon=True) for d in devs]
        for t in threads:
            t.start()
        start.wait()  # every camera set up: the load starts now
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        cpu = _cpu_s() - cpu0 - sum(camera_cpu)
    finally:
        dock.close()
    if failures:
        raise RuntimeError("ingest did not finish: " + "; ".join(failures[:3]))
    total_mb = cameras * segments * segment_mb
    waits.sort()
    p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else 0.0
    return IngestFigures(
        round(total_mb / seconds, 1),
        round(p99, 3),
        round(cpu / (total_mb / 1000), 1),
        total_mb,
        seconds,
    )
