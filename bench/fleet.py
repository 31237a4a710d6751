"""The dock taking in a fleet at once: the same 32-camera load on the embedded store and on
S3 Object Lock with a shared PostgreSQL index (Ceph's RADOS Gateway and PostgreSQL, started
here by scripts/fleet-services.sh unless BWV_S3_ENDPOINT and BWV_PG_URL name running ones),
in the same run, and their ratio (dock/bench_ingest.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import BenchError, Context, Result, benchmark


@benchmark(
    "dock_ingest_throughput_s3",
    description="32 cameras at once into one dock: S3 Object Lock + PostgreSQL vs the folder",
    figures=(
        "dock_ingest_throughput_local",
        "dock_ingest_throughput_s3",
        "dock_ingest_p99_receipt_s_s3",
        "dock_ingest_cpu_s_per_gb_s3",
    ),
)
def ingest(ctx: Context) -> list[Result]:
    from dock.backends import bind_backends
    from dock.bench_ingest import ingest as run
    from simulator.fleet_services import FleetServicesError, running_fleet_services
    from simulator.raid_fleet import FleetUnavailable, raid_backends

    cameras, segments, mb = (32, 1, 1.0) if ctx.quick else (32, 2, 4.0)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        local = run(tmp / "local", tmp / "cams-local", cameras, segments, mb)
        try:
            with running_fleet_services() as env:
                (tmp / "s3").mkdir()
                bind_backends(tmp / "s3", raid_backends(env))
                s3 = run(tmp / "s3", tmp / "cams-s3", cameras, segments, mb)
        except (FleetServicesError, FleetUnavailable) as exc:
            raise BenchError(f"dock_ingest_throughput_s3: {exc}") from None
    load = f"{cameras} cameras x {segments} x {mb:g} MB segments, 1 MiB chunks, TLS loopback"
    loc = Result(
        "dock_ingest_throughput_local",
        local.mb_s,
        "MB/s",
        lower_is_better=False,
        detail=f"{load}; folder + SQLite; p99 last byte -> receipt {local.p99_receipt_s} s, "
        f"{local.cpu_s_per_gb} CPU s/GB (cameras included)",
    )
    s3r = Result(
        "dock_ingest_throughput_s3",
        s3.mb_s,
        "MB/s",
        lower_is_better=False,
        detail=f"{load}; Ceph RGW (memstore, Object Lock) + PostgreSQL; p99 "
        f"{s3.p99_receipt_s} s, {s3.cpu_s_per_gb} CPU s/GB (this process: cameras and dock; "
        "Ceph's and PostgreSQL's own CPU not counted)",
    ).against(local.mb_s, "the same load on the folder store, same run")
    p99 = Result("dock_ingest_p99_receipt_s_s3", s3.p99_receipt_s, "s").against(
        local.p99_receipt_s or 1e-9, "folder store's p99, same run"
    )
    cpu = Result("dock_ingest_cpu_s_per_gb_s3", s3.cpu_s_per_gb, "CPU s/GB").against(
        local.cpu_s_per_gb or 1e-9, "folder store's, same run"
    )
    return [loc, s3r, p99, cpu]
