"""Dock figures (plain functions; the bench harness registers them):

- ``upload_throughput``: segments shipped device → dock over loopback by the real shipper
  (signed requests, checksummed chunks in its default size, written straight into the staged
  file and fsync'd before the receipt, verification, custody log, receipt, delete), in MB/s
  of stored bytes, by a camera docking with a shift's segments at a dock that has served
  another camera before (its one-time start-up work is not an upload's); beside it, the
  limit (each segment PUT over the dock's own TLS set-up, written with one fsync and hashed
  once at the receiver) and one plain HTTP PUT of the same bytes to a minimal server on the
  same uvicorn (written to a file, fsync'd once), and the ratio. Beside each time, the CPU
  the process spent in it (camera, dock and TLS at both ends share this machine's cores):
  ``upload_cpu_s_per_gb`` against the limit's.
- ``dock_verify_throughput``: the dock's check of one stored segment (record signature,
  stored digest of the blob, chain link), MB/s, from a warm page cache.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from capture.clock import MonotonicClock
from dock.client import DockClient
from dock.server import ServerThread, wall_clock_us
from dock.shipper import ChainOutbox, Shipper, ShipperConfig
from dock.testing import DockHarness, OutboxDevice, segment_bytes
from dock.verify import ChainRecordVerifier

MB = 1_000_000


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _sink_app(sink_dir: Path, hashed: bool = False):  # noqa: ANN202 - an ASGI callable
    """The baselines' server: each PUT body streamed to its own file (named by the path's
    last part), hashed once (SHA-256) as it arrives when ``hashed``, fsync'd, 204."""
    import hashlib

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        h = hashlib.sha256() if hashed else None
        with open(sink_dir / scope["path"].rsplit("/", 1)[-1], "wb") as f:
            while True:
                msg = await receive()
                body = msg.get("body", b"")
                if h is not None:
                    h.update(body)
                f.write(body)
                if not msg.get("more_body", False):
                    break
            f.flush()
            os.fsync(f.fileno())
        if h is not None:
            h.hexdigest()  # the receiver's one hash, taken
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


@dataclass(frozen=True)
class Timed:
    """Wall seconds and the process's CPU seconds (every thread, user and system) of a run."""

    wall_s: float
    cpu_s: float


class _Stopwatch:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), _cpu_s()

    def read(self) -> Timed:
        return Timed(time.perf_counter() - self.wall, _cpu_s() - self.cpu)


def _cpu_s() -> float:
    return time.process_time()  # the process's every thread, user and system


def _chunks(f: Any) -> Iterator[bytes]:
    """A file's bytes, 1 MiB at a time: a streamed request body."""
    while chunk := f.read(1 << 20):
        yield chunk


def _limit_upload(segments: list[Path], tmp: Path) -> Timed:
    """The same segments PUT one by one over the dock's own TLS set-up (TLS 1.3, its
    certificate, the key pinned), each written with one fsync and hashed once at the
    receiver: the upload's limit on this machine."""
    from nacl.signing import SigningKey

    from dock.tls import ensure_tls_files, pinned_to

    key = SigningKey.generate()
    (tmp / "limit").mkdir()
    tls = ensure_tls_files(tmp / "limit", key)
    pinned = pinned_to(bytes(key.verify_key))
    with (
        ServerThread(_sink_app(tmp / "limit", hashed=True), tls=tls) as srv,
        httpx.Client(base_url=srv.url, timeout=120, verify=pinned) as http,
    ):
        watch = _Stopwatch()
        for i, seg in enumerate(segments):
            with open(seg, "rb") as f:
                r = http.put(f"/upload/{i}", content=_chunks(f))
            assert r.status_code == 204
        return watch.read()


def _plain_upload_s(data_path: Path, tmp: Path) -> float:
    with (
        ServerThread(_sink_app(tmp)) as srv,
        httpx.Client(base_url=srv.url, timeout=120) as http,
    ):
        t = time.perf_counter()
        with open(data_path, "rb") as f:
            r = http.put("/upload", content=_chunks(f))
        elapsed = time.perf_counter() - t
        assert r.status_code == 204
    return elapsed


def _warm_up(dock: DockHarness, tmp: Path) -> None:
    """Another camera ships one small segment first: the dock's first request of each kind
    builds its routes (FastAPI's, per process, ~0.1 s), a cost of starting a dock, not of
    uploading; the timed camera still opens its own connection (TLS handshake included)."""
    dev = OutboxDevice(tmp / "warm-outbox", "warm-cam")
    creds = dock.enroll(dev)
    dev.add_segment(segment_bytes(1 * MB, seed=99))
    with DockClient(dock.url, creds, wall_clock=wall_clock_us, timeout=120) as client:
        shipper = Shipper(ChainOutbox(dev.root), client, MonotonicClock())
        shipper.drain()
        if shipper.state.shipped != 1:
            raise RuntimeError("bench warm-up upload did not finish")


def _dock_upload(tmp: Path, n: int, segment_mb: int, chunk_mb: int | None) -> Timed:
    dev = OutboxDevice(tmp / "outbox", "bench-cam")  # a shift's segments, closed a while ago
    for i in range(n):
        dev.add_segment(segment_bytes(segment_mb * MB, seed=i))
    dev.end_recording()
    dock = DockHarness(tmp / "dock")
    try:
        _warm_up(dock, tmp)
        creds = dock.enroll(dev)
        client = DockClient(dock.url, creds, wall_clock=wall_clock_us, timeout=120)
        shipper = Shipper(
            ChainOutbox(dev.root),
            client,
            MonotonicClock(),
            config=ShipperConfig()
            if chunk_mb is None
            else ShipperConfig(chunk_bytes=chunk_mb << 20),
        )
        watch = _Stopwatch()
        reports = shipper.drain()
        elapsed = watch.read()
        client.close()
        if shipper.state.shipped != n + 1:
            raise RuntimeError(f"bench upload did not finish: {reports[-1]}")
    finally:
        dock.close()
    return elapsed


def _one_round(
    tmp: Path, n: int, segment_mb: int, chunk_mb: int | None
) -> tuple[Timed, float, Timed]:
    """The dock upload, the plain PUT (seconds) and the limit, of the same bytes."""
    dock = _dock_upload(tmp / "dock-run", n, segment_mb, chunk_mb)
    data = tmp / "plain.in"  # the same bytes: one plain PUT, and one PUT a segment
    segs = [tmp / f"seg{i}" for i in range(n)]
    with open(data, "wb") as f:
        for i, seg in enumerate(segs):
            payload = segment_bytes(segment_mb * MB, seed=i)
            seg.write_bytes(payload)
            f.write(payload)
    return dock, _plain_upload_s(data, tmp), _limit_upload(segs, tmp)


def upload_throughput(
    total_mb: int = 64, segment_mb: int = 8, chunk_mb: int | None = None, rounds: int = 2
) -> Figure:
    """``chunk_mb``: the shipper's chunk size (None: its default, as a camera ships). Each
    time is the best of ``rounds``, each CPU figure the least."""
    n = max(1, total_mb // segment_mb)
    total = n * segment_mb * MB
    runs = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp_s:
            runs.append(_one_round(Path(tmp_s), n, segment_mb, chunk_mb))
    dock_s, plain_s = min(d.wall_s for d, _, _ in runs), min(p for _, p, _ in runs)
    limit_s = min(lim.wall_s for _, _, lim in runs)
    dock_cpu = min(d.cpu_s for d, _, _ in runs)
    limit_cpu = min(lim.cpu_s for _, _, lim in runs)
    rate = total / MB / dock_s
    chunk_mib = (ShipperConfig().chunk_bytes >> 20) if chunk_mb is None else chunk_mb
    plain_rate, limit_rate = total / MB / plain_s, total / MB / limit_s
    gb = total / 1e9
    return Figure(
        "upload_throughput",
        round(rate, 1),
        "MB/s",
        f"{n} x {segment_mb} MB segments in {chunk_mib:g} MiB chunks to a warm dock, best of "
        f"{rounds}; plain HTTP PUT of the same bytes {plain_rate:.1f} MB/s (ratio "
        f"{rate / plain_rate:.2f}); the limit, HTTPS PUT per segment with the dock's TLS, one "
        f"fsync each, hashed once at the receiver, {limit_rate:.1f} MB/s (ratio "
        f"{rate / limit_rate:.2f}); CPU of the whole process (camera, dock, TLS at both ends) "
        f"{dock_cpu / gb:.2f} s/GB, the limit's {limit_cpu / gb:.2f} s/GB (ratio "
        f"{limit_cpu / dock_cpu:.2f})",
        {
            "plain_http_mb_s": round(plain_rate, 1),
            "ratio": round(rate / plain_rate, 3),
            "limit_mb_s": round(limit_rate, 1),
            "cpu_s_per_gb": round(dock_cpu / gb, 3),
            "limit_cpu_s_per_gb": round(limit_cpu / gb, 3),
        },
    )


def dock_verify_throughput(segment_mb: int = 64, rounds: int = 3) -> Figure:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        dev = OutboxDevice(tmp / "outbox", "bench-cam")
        rec = dev.add_segment(segment_bytes(segment_mb * MB, seed=1))
        blob = tmp / "outbox" / "segments" / rec.record["file"]
        verifier = ChainRecordVerifier()
        best = float("inf")
        for _ in range(rounds):
            with open(blob, "rb") as f:
                t = time.perf_counter()
                result = verifier.verify(dev.public_key, rec.line, f, None)
                best = min(best, time.perf_counter() - t)
            if not result.ok:
                raise RuntimeError(f"bench segment did not verify: {result.problems}")
    return Figure(
        "dock_verify_throughput",
        round(segment_mb * MB / MB / best, 1),
        "MB/s",
        f"one {segment_mb} MB segment: record signature, stored digest, chain link "
        f"(best of {rounds})",
    )


if __name__ == "__main__":
    for fig in (upload_throughput(), dock_verify_throughput()):
        print(f"{fig.name}: {fig.value} {fig.unit} ({fig.detail})")
