"""Dock figures (measured by dock/bench.py): upload over loopback against a plain HTTP PUT of
the same bytes in the same run, and the dock's verification speed."""

from __future__ import annotations

from bench import Context, Result, benchmark


@benchmark(
    "upload_throughput",
    description="device -> dock over loopback, vs a plain PUT and vs the limit",
    figures=("upload_throughput", "upload_throughput_vs_limit", "upload_cpu_s_per_gb"),
)
def upload(ctx: Context) -> list[Result]:
    from dock.bench import upload_throughput

    f = upload_throughput(total_mb=16 if ctx.quick else 64)
    r = Result(f.name, f.value, f.unit, lower_is_better=False, detail=f.detail)
    plain = r.against(f.extra["plain_http_mb_s"], "plain HTTP PUT of the same bytes (uvicorn)")
    limit = Result(
        "upload_throughput_vs_limit", f.value, f.unit, lower_is_better=False, detail=f.detail
    ).against(
        f.extra["limit_mb_s"],
        "HTTPS PUT per segment (the dock's TLS), one fsync each, hashed once at the receiver",
    )
    # the CPU both spend (every thread of the process: camera, dock, TLS at both ends), the
    # bound on the throughput ratio where the cores are what both wait for
    cpu = Result(
        "upload_cpu_s_per_gb", f.extra["cpu_s_per_gb"], "CPU s/GB", detail=f.detail
    ).against(f.extra["limit_cpu_s_per_gb"], "the limit's CPU for the same bytes")
    return [
        plain.with_goal(">= 0.9x", (plain.ratio or 0) >= 0.9),
        limit.with_goal(">= 0.8x", (limit.ratio or 0) >= 0.8),
        cpu,
    ]


@benchmark("dock_verify_throughput", description="the dock's verification of a segment, MB/s")
def verify(ctx: Context) -> Result:
    from dock.bench import dock_verify_throughput

    f = dock_verify_throughput(segment_mb=16 if ctx.quick else 64)
    return Result(f.name, f.value, f.unit, lower_is_better=False, detail=f.detail)


@benchmark(
    "outbox_step_ms",
    description="the camera's own work a shipper step, a shift's records waiting",
)
def outbox_step(ctx: Context) -> Result:
    from dock.bench_outbox import outbox_step_ms

    f = outbox_step_ms(records=200 if ctx.quick else 2880, steps=10 if ctx.quick else 50)
    return Result(f.name, f.value, f.unit, detail=f.detail)
