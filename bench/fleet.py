"""The dock taking in a fleet at once (dock/bench_ingest.py): 32 cameras uploading together to
one dock on loopback. ``dock_ingest_throughput`` on the embedded store, with the p99 time
from a segment's last byte to its receipt and the dock's CPU seconds per GB; and
``dock_ingest_throughput_s3``, the same load on S3 Object Lock with a shared PostgreSQL
index (Ceph's RADOS Gateway and PostgreSQL, started here by scripts/fleet-services.sh unless
BWV_S3_ENDPOINT and BWV_PG_URL name running ones), against the embedded store measured again
in the same run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench import BenchError, Context, Result, benchmark

CAMERAS = 32
SHIFT_GB = 8 * 3600 * 5_000_000 / 8 / 1e9  # 8 hours of 1080p at the default 5 Mbit/s: 18 GB


def _load(ctx: Context) -> tuple[int, int, float]:
    return (CAMERAS, 1, 1.0) if ctx.quick else (CAMERAS, 2, 4.0)


def _describe(load: tuple[int, int, float]) -> str:
    cameras, segments, mb = load
    return f"{cameras} cameras x {segments} x {mb:g} MB segments, 1 MiB chunks, TLS loopback"


def _shift_line(f: Any) -> str:
    """How many cameras' end-of-shift footage (8 h of 1080p) one dock takes in an hour, by
    this run's throughput and by its CPU (all of this machine's cores)."""
    import os

    by_rate = f.mb_s * 3600 / 1000 / SHIFT_GB
    by_cpu = (os.cpu_count() or 1) * 3600 / (f.cpu_s_per_gb * SHIFT_GB) if f.cpu_s_per_gb else 0
    return (
        f"8 h of 1080p ({SHIFT_GB:.0f} GB) from {by_rate:.1f} cameras an hour at this rate; "
        f"the dock's CPU alone would allow {by_cpu:.1f}"
    )


@benchmark(
    "dock_ingest_throughput",
    description="32 cameras at once into one dock (folder store): MB/s, p99 receipt, CPU s/GB",
    figures=("dock_ingest_throughput", "dock_ingest_p99_receipt_s", "dock_ingest_cpu_s_per_gb"),
)
def ingest_local(ctx: Context) -> list[Result]:
    from dock.bench_ingest import ingest as run

    load = _load(ctx)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        f = run(tmp / "dock", tmp / "cams", *load)
    return [
        Result(
            "dock_ingest_throughput",
            f.mb_s,
            "MB/s",
            lower_is_better=False,
            detail=f"{_describe(load)}; signatures, verification, the log; {_shift_line(f)}",
        ),
        Result("dock_ingest_p99_receipt_s", f.p99_receipt_s, "s", detail="last chunk -> receipt"),
        Result(
            "dock_ingest_cpu_s_per_gb",
            f.cpu_s_per_gb,
            "CPU s/GB",
            detail="the dock's threads: the process's CPU less the cameras' threads'",
        ),
    ]


@benchmark(
    "dock_ingest_throughput_s3",
    description="32 cameras at once into one dock: S3 Object Lock + PostgreSQL vs the folder",
    figures=(
        "dock_ingest_throughput_s3",
        "dock_ingest_p99_receipt_s_s3",
        "dock_ingest_cpu_s_per_gb_s3",
    ),
)
def ingest_s3(ctx: Context) -> list[Result]:
    from dock.backends import bind_backends
    from dock.bench_ingest import ingest as run
    from simulator.fleet_services import FleetServicesError, running_fleet_services
    from simulator.raid_fleet import FleetUnavailable, raid_backends

    load = _load(ctx)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        local = run(tmp / "local", tmp / "cams-local", *load)
        try:
            with running_fleet_services() as env:
                (tmp / "s3").mkdir()
                bind_backends(tmp / "s3", raid_backends(env))
                s3 = run(tmp / "s3", tmp / "cams-s3", *load)
        except (FleetServicesError, FleetUnavailable) as exc:
            raise BenchError(f"dock_ingest_throughput_s3: {exc}") from None
    s3r = Result(
        "dock_ingest_throughput_s3",
        s3.mb_s,
        "MB/s",
        lower_is_better=False,
        detail=f"{_describe(load)}; Ceph RGW (memstore, Object Lock) + PostgreSQL on the same "
        f"cores; {_shift_line(s3)}",
    ).against(local.mb_s, "the same load on the folder store, same run")
    p99 = Result("dock_ingest_p99_receipt_s_s3", s3.p99_receipt_s, "s").against(
        local.p99_receipt_s or 1e-9, "folder store's p99, same run"
    )
    cpu = Result(
        "dock_ingest_cpu_s_per_gb_s3",
        s3.cpu_s_per_gb,
        "CPU s/GB",
        detail="the dock's threads; Ceph's and PostgreSQL's own CPU not counted",
    ).against(local.cpu_s_per_gb or 1e-9, "folder store's, same run")
    return [s3r, p99, cpu]
